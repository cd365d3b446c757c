//! `--device`: which backend runs the model. `auto` takes the GPU when this build has the
//! `cuda` feature and a CUDA driver with at least one device is present, else the CPU.

use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    #[default]
    Auto,
    Cpu,
    Cuda,
}

impl FromStr for Device {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Device::Auto),
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda),
            other => Err(format!(
                "unsupported device `{other}` (supported: auto, cpu, cuda)"
            )),
        }
    }
}

/// The backend a load resolved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Cpu,
    Cuda,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Cpu => "cpu",
            Backend::Cuda => "cuda",
        })
    }
}

/// Whether this build was compiled with the CUDA backend.
pub const CUDA_BUILT: bool = cfg!(feature = "cuda");

impl Device {
    /// Picks the backend, or explains in one line why `--device cuda` cannot be honoured.
    pub fn resolve(self) -> Result<Backend, String> {
        match self {
            Device::Cpu => Ok(Backend::Cpu),
            Device::Auto => Ok(if cuda_usable().is_ok() {
                Backend::Cuda
            } else {
                Backend::Cpu
            }),
            Device::Cuda => cuda_usable()
                .map(|()| Backend::Cuda)
                .map_err(|why| format!("--device cuda: {why}")),
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn cuda_usable() -> Result<(), String> {
    Err("this build has no CUDA backend (rebuild with `--features cuda`)".into())
}

#[cfg(feature = "cuda")]
fn cuda_usable() -> Result<(), String> {
    use kernels::cuda::cudarc::driver::result;
    if !kernels::cuda::driver_available() {
        return Err("no CUDA driver found (libcuda.so could not be loaded)".into());
    }
    result::init().map_err(|e| format!("the CUDA driver failed to initialise: {e}"))?;
    match result::device::get_count() {
        Ok(n) if n > 0 => Ok(()),
        Ok(_) => Err("the CUDA driver reports no device".into()),
        Err(e) => Err(format!("counting CUDA devices failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_flag_values() {
        assert_eq!("auto".parse::<Device>(), Ok(Device::Auto));
        assert_eq!("cuda".parse::<Device>(), Ok(Device::Cuda));
        assert!("tpu"
            .parse::<Device>()
            .unwrap_err()
            .contains("supported: auto, cpu, cuda"));
    }

    #[test]
    fn cpu_is_always_available_and_cuda_explains_itself() {
        assert_eq!(Device::Cpu.resolve(), Ok(Backend::Cpu));
        match Device::Cuda.resolve() {
            Ok(b) => assert_eq!(b, Backend::Cuda),
            Err(e) => {
                assert!(e.starts_with("--device cuda: ") && !e.contains('\n'), "{e}");
                assert_eq!(Device::Auto.resolve(), Ok(Backend::Cpu));
            }
        }
    }
}
