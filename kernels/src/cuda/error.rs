//! Errors of the CUDA backend, each with the context needed to act on it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    #[error("no CUDA driver found (libcuda could not be loaded)")]
    NoDriver,
    #[error("no CUDA device {ordinal} (the driver reports {count})")]
    NoDevice { ordinal: usize, count: i32 },
    #[error("libcublas could not be loaded (it ships with the CUDA toolkit and with PyTorch's nvidia-cublas wheel; put its lib/ on LD_LIBRARY_PATH)")]
    NoCublas,
    #[error("libnvrtc could not be loaded (install the `nvidia-cuda-nvrtc` wheel or a CUDA toolkit and put its lib/ on LD_LIBRARY_PATH)")]
    NoNvrtc,
    #[error("CUDA driver call failed during {during}: {source}")]
    Driver {
        during: &'static str,
        source: cudarc::driver::DriverError,
    },
    #[error("cuBLAS call failed during {during}: {source}")]
    Cublas {
        during: &'static str,
        source: cudarc::cublas::result::CublasError,
    },
    #[error("NVRTC failed on {kernel} for {arch}: {log}")]
    Nvrtc {
        kernel: &'static str,
        arch: String,
        log: String,
    },
    #[error("kernel {kernel} has no function `{function}`")]
    MissingFunction {
        kernel: &'static str,
        function: String,
    },
    #[error("kernel cache {path}: {source}")]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {detail}")]
    Invalid { what: &'static str, detail: String },
}

impl CudaError {
    pub(crate) fn driver(
        during: &'static str,
    ) -> impl FnOnce(cudarc::driver::DriverError) -> CudaError {
        move |source| CudaError::Driver { during, source }
    }

    pub(crate) fn cublas(
        during: &'static str,
    ) -> impl FnOnce(cudarc::cublas::result::CublasError) -> CudaError {
        move |source| CudaError::Cublas { during, source }
    }
}
