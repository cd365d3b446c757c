//! A minimal dlopen wrapper: the NVIDIA libraries are optional at run time, so they are looked
//! up when the report runs instead of being linked.

use std::ffi::{c_void, CStr, CString};

pub struct Lib {
    handle: *mut c_void,
    pub name: String,
}

impl Lib {
    /// The first of `names` that loads.
    pub fn open_any(names: &[&str]) -> Option<Lib> {
        names.iter().find_map(|n| {
            let c = CString::new(*n).ok()?;
            // SAFETY: a valid NUL-terminated name; a null handle is checked.
            let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
            (!handle.is_null()).then(|| Lib {
                handle,
                name: n.to_string(),
            })
        })
    }

    /// The address of `symbol`, or None.
    pub fn sym(&self, symbol: &str) -> Option<*mut c_void> {
        let c = CString::new(symbol).ok()?;
        // SAFETY: the handle is live for as long as `self`.
        let p = unsafe { libc::dlsym(self.handle, c.as_ptr()) };
        (!p.is_null()).then_some(p)
    }

    /// The file the library was loaded from, found through one of its symbols.
    pub fn path_of(&self, symbol: &str) -> Option<String> {
        let p = self.sym(symbol)?;
        // SAFETY: dladdr only reads the address; dli_fname points into the loader's own tables.
        unsafe {
            let mut info: libc::Dl_info = std::mem::zeroed();
            if libc::dladdr(p, &mut info) == 0 || info.dli_fname.is_null() {
                return None;
            }
            let path = CStr::from_ptr(info.dli_fname)
                .to_string_lossy()
                .into_owned();
            Some(
                std::fs::canonicalize(&path)
                    .map(|p| p.display().to_string())
                    .unwrap_or(path),
            )
        }
    }
}

impl Drop for Lib {
    fn drop(&mut self) {
        // SAFETY: the handle came from dlopen and is closed once.
        unsafe {
            libc::dlclose(self.handle);
        }
    }
}

/// Casts a symbol to the function type `F`.
///
/// # Safety
/// `F` must be the symbol's true C signature, as an `extern "C" fn` pointer type.
pub unsafe fn as_fn<F: Copy>(p: *mut c_void) -> F {
    debug_assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<*mut c_void>());
    std::mem::transmute_copy(&p)
}
