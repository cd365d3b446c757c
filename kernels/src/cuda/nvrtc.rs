//! NVRTC compilation of one kernel module to a cubin for one architecture.
//!
//! A cubin rather than PTX: PTX from a newer NVRTC than the driver cannot be JIT-compiled by
//! that driver, while a cubin for the device's own `sm_XY` loads on any driver of the same
//! major version. The compile log is returned even on success so callers (and the CI test)
//! can treat warnings as failures.

use std::ffi::{c_char, CStr, CString};

use cudarc::nvrtc::{result, sys};

use super::error::CudaError;
use super::registry::KernelModule;

/// A compute capability, e.g. `Arch { major: 9, minor: 0 }` for H100/H200 (`sm_90`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Arch {
    pub major: u32,
    pub minor: u32,
}

impl Arch {
    pub fn sm(&self) -> String {
        format!("sm_{}{}", self.major, self.minor)
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.sm())
    }
}

/// The output of one compilation: the cubin and NVRTC's log (empty when clean).
#[derive(Debug, Clone)]
pub struct Compiled {
    pub cubin: Vec<u8>,
    pub log: String,
}

/// Whether libnvrtc can be loaded. Checked before any NVRTC call, because cudarc panics when it
/// first needs a library it cannot find.
pub fn nvrtc_available() -> bool {
    // SAFETY: only tries to dlopen the candidate library names.
    unsafe { sys::is_culib_present() }
}

/// NVRTC's (major, minor) version; part of the on-disk cache key.
pub fn nvrtc_version() -> Result<(i32, i32), CudaError> {
    if !nvrtc_available() {
        return Err(CudaError::NoNvrtc);
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: two valid out-pointers.
    let rc = unsafe { sys::nvrtcVersion(&mut major, &mut minor) };
    rc.result().map_err(|e| CudaError::Nvrtc {
        kernel: "-",
        arch: "-".into(),
        log: format!("nvrtcVersion: {e:?}"),
    })?;
    Ok((major, minor))
}

/// The options every module is compiled with. No fast math: the kernels are checked against
/// PyTorch's float32 results, and the exp/rsqrt intrinsics used are chosen per call site.
pub(crate) fn options(arch: Arch) -> Vec<String> {
    vec![
        format!("--gpu-architecture={}", arch.sm()),
        "--std=c++17".into(),
    ]
}

/// Compiles `module` for `arch`. Fails with the log on a compile error; on success returns the
/// cubin and whatever NVRTC printed (warnings).
pub fn compile(module: KernelModule, arch: Arch) -> Result<Compiled, CudaError> {
    if !nvrtc_available() {
        return Err(CudaError::NoNvrtc);
    }
    let err = |log: String| CudaError::Nvrtc {
        kernel: module.name(),
        arch: arch.sm(),
        log,
    };
    let src =
        CString::new(module.source()).map_err(|_| err("source contains a NUL byte".into()))?;
    let name = CString::new(module.file_name())
        .map_err(|_| err("file name contains a NUL byte".into()))?;
    let prog = result::create_program(&src, Some(&name))
        .map_err(|e| err(format!("nvrtcCreateProgram: {e:?}")))?;
    let opts = options(arch);
    // SAFETY: `prog` is a live program until destroyed below; the buffers are sized by NVRTC.
    let outcome = unsafe {
        let compiled = result::compile_program(prog, &opts);
        let log = program_log(prog);
        match compiled {
            Err(e) => Err(err(format!("{e:?}: {}", log.unwrap_or_default()))),
            Ok(()) => match (cubin(prog), log) {
                (Ok(cubin), Ok(log)) => Ok(Compiled { cubin, log }),
                (Err(e), _) | (_, Err(e)) => Err(err(e)),
            },
        }
    };
    // SAFETY: created above and not used afterwards.
    let _ = unsafe { result::destroy_program(prog) };
    outcome
}

unsafe fn program_log(prog: sys::nvrtcProgram) -> Result<String, String> {
    let raw = result::get_program_log(prog).map_err(|e| format!("nvrtcGetProgramLog: {e:?}"))?;
    if raw.is_empty() {
        return Ok(String::new());
    }
    let log = CStr::from_ptr(raw.as_ptr()).to_string_lossy();
    Ok(log
        .trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .to_string())
}

unsafe fn cubin(prog: sys::nvrtcProgram) -> Result<Vec<u8>, String> {
    let mut size = 0usize;
    sys::nvrtcGetCUBINSize(prog, &mut size)
        .result()
        .map_err(|e| format!("nvrtcGetCUBINSize: {e:?}"))?;
    let mut buf = vec![0u8; size];
    sys::nvrtcGetCUBIN(prog, buf.as_mut_ptr() as *mut c_char)
        .result()
        .map_err(|e| format!("nvrtcGetCUBIN: {e:?}"))?;
    Ok(buf)
}
