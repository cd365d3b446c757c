pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod cuda_libs;
