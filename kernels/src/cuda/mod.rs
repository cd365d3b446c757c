//! The CUDA backend (feature `cuda`): kernels in `.cu` files compiled with NVRTC at first use for
//! the device's architecture and cached on disk, cuBLAS for the GEMMs.
//!
//! Everything is loaded at run time (cudarc's `dynamic-loading`): a binary built with this
//! feature starts on a machine without a driver and simply reports that no GPU is available.
//! Activations are bf16 (f32 for the residual stream), every reduction accumulates in f32.

mod device;
mod error;
mod nvrtc;
mod ops;
mod registry;
mod sample;

pub use cudarc;
pub use device::{driver_available, GpuDevice, GpuInfo};
pub use error::CudaError;
pub use nvrtc::{compile, nvrtc_available, nvrtc_version, Arch, Compiled};
pub use ops::{AttentionBatch, DecodeWork, Gemm, PrefillWork};
pub use registry::{KernelModule, Kernels};
pub use sample::{GpuSampleRow, GpuSampled};
