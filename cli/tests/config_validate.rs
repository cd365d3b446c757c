//! `vllm config validate FILE` as a CI pipeline uses it: exit 0 for every good file of the
//! shared corpus, 1 with a line-numbered problem for every bad one.

use std::path::{Path, PathBuf};
use std::process::Command;

fn vllm() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target/<profile>");
    dir.join("vllm")
}

fn corpus(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../daemon/tests/fixtures/config").join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(!files.is_empty());
    files
}

#[test]
fn good_files_pass_and_bad_files_fail_with_a_line() {
    for f in corpus("good") {
        let out = Command::new(vllm()).args(["config", "validate"]).arg(&f).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}: {}", f.display(), String::from_utf8_lossy(&out.stderr));
    }
    for f in corpus("bad") {
        let out = Command::new(vllm()).args(["config", "validate"]).arg(&f).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", f.display());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("line "), "{}: {err}", f.display());
    }
}
