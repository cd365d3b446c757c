//! Writing an output file whole or not at all: the bytes go to a temporary file beside the
//! target (same directory, so same file system), are flushed to disk, then renamed over the
//! target. A full disk or a dead process leaves the target as it was, never half-written.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The directory a file is written into (`.` for a bare file name).
fn dir_of(dest: &Path) -> &Path {
    match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A fresh hidden temporary name beside `dest`.
fn temp_beside(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    let tag = daemon::server::state::random_id("tmp");
    dir_of(dest).join(format!(".{name}.{tag}"))
}

/// Creates and removes a temporary file beside `dest`: an unwritable directory is found before
/// any work is done rather than after.
pub fn check_writable(dest: &Path) -> std::io::Result<()> {
    let tmp = temp_beside(dest);
    OpenOptions::new().write(true).create_new(true).open(&tmp)?;
    std::fs::remove_file(&tmp)
}

/// Writes `bytes` to `dest` atomically (see the module comment).
pub fn write_atomically(dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_beside(dest);
    let written = (|| {
        let mut f: File = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        // ENOSPC can surface only here, when the data reach the disk.
        f.sync_all()?;
        std::fs::rename(&tmp, dest)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vllm-output-file-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn replaces_the_target_and_leaves_no_temporary() {
        let d = scratch("ok");
        let dest = d.join("out.jsonl");
        std::fs::write(&dest, "old").unwrap();
        check_writable(&dest).unwrap();
        write_atomically(&dest, b"new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "new\n");
        let names: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.jsonl")]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_missing_directory_fails_without_writing() {
        let d = scratch("missing");
        let dest = d.join("no-such-dir").join("out.jsonl");
        assert!(check_writable(&dest).is_err());
        assert!(write_atomically(&dest, b"x").is_err());
        assert!(!dest.exists());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
