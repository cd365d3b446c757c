//! Which CUDA libraries this process could load, and their versions, for `vllm collect-env`.
//!
//! NVML has a safe wrapper crate (nvml-wrapper) but the driver API, cuBLAS and NVRTC version
//! calls have none outside cudarc, whose loaders panic when a library is missing and exist only
//! with the `cuda` feature. So the three version calls live here, next to the backend that loads
//! the same sonames, through `libloading`; callers get plain data and need no `unsafe`. Each
//! library is closed again after the probe.

use std::path::Path;

use libloading::Library;

/// One library that loaded: its soname as asked for, the file it came from and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedLib {
    pub soname: String,
    /// The file the dynamic loader mapped (symlinks resolved), when the process map shows it.
    pub path: Option<String>,
    /// `None` when the version call is missing or failed.
    pub version: Option<String>,
}

// Same candidates as the CUDA backend (cudarc's `cuda-13000` build tries `.so.13`, then older
// majors); the unversioned names come first because a toolkit install provides them.
const LIBCUDA: &[&str] = &["libcuda.so.1", "libcuda.so"];
const LIBCUBLAS: &[&str] = &[
    "libcublas.so",
    "libcublas.so.13",
    "libcublas.so.12",
    "libcublas.so.11",
];
const LIBNVRTC: &[&str] = &[
    "libnvrtc.so",
    "libnvrtc.so.13",
    "libnvrtc.so.12",
    "libnvrtc.so.11.2",
];

/// Opens the first of `names` that loads.
fn open_first(names: &[&'static str]) -> Option<(Library, &'static str)> {
    names.iter().find_map(|&n| {
        // SAFETY: these are NVIDIA's own libraries, whose initialisers have no preconditions on
        // the loading process; loading them is what the CUDA backend does too.
        unsafe { Library::new(n) }.ok().map(|l| (l, n))
    })
}

/// The file in this process's memory map whose name starts with `stem` (`libnvrtc.so`), found
/// through `/proc/self/maps`: the loader resolved the search path, so this is the one in use.
pub fn loaded_path(stem: &str) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| {
            Path::new(p)
                .file_name()
                .and_then(|f| f.to_str())
                .is_some_and(|f| f.starts_with(stem))
        })
        .map(str::to_string)
}

/// Takes the library to show that it must still be open: once closed, it leaves the map.
fn loaded(_open: &Library, soname: &str, stem: &str, version: Option<String>) -> LoadedLib {
    LoadedLib {
        soname: soname.to_string(),
        path: loaded_path(stem),
        version,
    }
}

/// `major.minor` from CUDA's integer encoding (`13000` is 13.0).
fn cuda_version(v: i32) -> String {
    format!("{}.{}", v / 1000, (v % 1000) / 10)
}

/// The driver API library and the CUDA version it implements (`cuDriverGetVersion`).
pub fn libcuda() -> Option<LoadedLib> {
    let (lib, name) = open_first(LIBCUDA)?;
    // SAFETY: the documented signature `CUresult cuDriverGetVersion(int*)`; callable before cuInit.
    let version = unsafe {
        lib.get::<unsafe extern "C" fn(*mut i32) -> i32>(b"cuDriverGetVersion\0")
            .ok()
            .and_then(|f| {
                let mut v = 0;
                (f(&mut v) == 0).then(|| cuda_version(v))
            })
    };
    Some(loaded(&lib, name, "libcuda.so", version))
}

/// cuBLAS and its `major.minor.patch` (`cublasGetProperty`).
pub fn libcublas() -> Option<LoadedLib> {
    let (lib, name) = open_first(LIBCUBLAS)?;
    // SAFETY: `cublasStatus_t cublasGetProperty(libraryPropertyType, int*)`, where the type is
    // 0 major, 1 minor, 2 patch; it needs no handle.
    let version = unsafe {
        lib.get::<unsafe extern "C" fn(i32, *mut i32) -> i32>(b"cublasGetProperty\0")
            .ok()
            .and_then(|f| {
                let mut parts = [0; 3];
                for (kind, v) in parts.iter_mut().enumerate() {
                    if f(kind as i32, v) != 0 {
                        return None;
                    }
                }
                Some(format!("{}.{}.{}", parts[0], parts[1], parts[2]))
            })
    };
    Some(loaded(&lib, name, "libcublas.so", version))
}

/// NVRTC and its `major.minor` (`nvrtcVersion`).
pub fn libnvrtc() -> Option<LoadedLib> {
    let (lib, name) = open_first(LIBNVRTC)?;
    // SAFETY: `nvrtcResult nvrtcVersion(int*, int*)`.
    let version = unsafe {
        lib.get::<unsafe extern "C" fn(*mut i32, *mut i32) -> i32>(b"nvrtcVersion\0")
            .ok()
            .and_then(|f| {
                let (mut major, mut minor) = (0, 0);
                (f(&mut major, &mut minor) == 0).then(|| format!("{major}.{minor}"))
            })
    };
    Some(loaded(&lib, name, "libnvrtc.so", version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuda_version_encoding() {
        assert_eq!(cuda_version(13000), "13.0");
        assert_eq!(cuda_version(12080), "12.8");
    }

    #[test]
    fn the_c_library_is_in_the_process_map() {
        // Every Linux Rust binary maps libc; a name nobody loads is not found.
        if cfg!(target_os = "linux") {
            let libc = loaded_path("libc.so").expect("libc mapped");
            assert!(libc.contains("libc.so"), "{libc}");
        }
        assert_eq!(loaded_path("libsurely-not-loaded-here.so"), None);
    }

    #[test]
    fn nvrtc_probe_matches_the_test_setup() {
        // CI puts the nvidia-cuda-nvrtc wheel on LD_LIBRARY_PATH and sets VLLM_REQUIRE_NVRTC.
        let found = libnvrtc();
        if std::env::var_os("VLLM_REQUIRE_NVRTC").is_some() {
            let lib = found.expect("VLLM_REQUIRE_NVRTC is set but libnvrtc did not load");
            let version = lib.version.expect("nvrtcVersion answered");
            assert!(
                version.split('.').all(|p| p.parse::<u32>().is_ok()),
                "{version}"
            );
            assert!(lib.path.is_some_and(|p| p.contains("libnvrtc.so")));
        }
    }
}
