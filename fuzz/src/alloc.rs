//! A global allocator for the fuzz test binary that refuses any single allocation over a cap,
//! so "a header says 2^40 elements and the parser believed it" fails loudly, naming the input,
//! instead of passing on a machine with enough memory or swapping a small one to death.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Largest single allocation a parser may make from a fuzz input. The biggest honest one is
/// the tokenizer of a real model (tens of MiB); a header-driven size is far beyond.
pub const ALLOCATION_CAP: usize = 256 << 20;

/// Forwards to the system allocator below [`ALLOCATION_CAP`]; above it, saves the input the
/// current thread is running, says so on stderr, and fails the allocation (which aborts).
pub struct CappedAlloc;

/// What the current thread is fuzzing: (target, artifact dir, input). Raw pointers because
/// the allocator must not allocate to record them; they are valid between `set_current` and
/// `clear_current`, which bracket the target call.
type Current = Option<(&'static str, *const Path, *const [u8])>;

thread_local! {
    static CURRENT: Cell<Current> = const { Cell::new(None) };
    /// Set while reporting, so the report's own small allocations pass straight through.
    static REPORTING: Cell<bool> = const { Cell::new(false) };
}

pub(crate) fn set_current(target: &'static str, dir: &Path, input: &[u8]) {
    CURRENT.with(|c| c.set(Some((target, dir as *const Path, input as *const [u8]))));
}

pub(crate) fn clear_current() {
    CURRENT.with(|c| c.set(None));
}

fn report(size: usize) {
    if REPORTING.with(|r| r.replace(true)) {
        return;
    }
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "fuzz: one allocation of {size} bytes (cap {ALLOCATION_CAP}): unbounded allocation from input"
    );
    if let Some((target, dir, input)) = CURRENT.with(|c| c.get()) {
        // SAFETY: `set_current` stored references that outlive the target call we are in.
        let (dir, input) = unsafe { (&*dir, &*input) };
        let path: PathBuf = dir.join(format!("{target}-alloc-{}.bin", input.len()));
        let _ = std::fs::create_dir_all(dir);
        let saved = std::fs::write(&path, input).is_ok();
        let _ = writeln!(
            err,
            "fuzz {target}: input saved to {} ({saved}); first 256 bytes: {}",
            path.display(),
            crate::driver::escape(input, 256)
        );
    }
    REPORTING.with(|r| r.set(false));
}

// SAFETY: every call forwards to `System` with the caller's layout, or returns null (allowed:
// the caller then reports an allocation failure).
unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOCATION_CAP {
            report(layout.size());
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOCATION_CAP {
            report(layout.size());
            return std::ptr::null_mut();
        }
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > ALLOCATION_CAP {
            report(new_size);
            return std::ptr::null_mut();
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
