//! `vllm config validate FILE` as a CI pipeline uses it: exit 0 for every good file of the
//! shared corpus, 1 with a line-numbered problem for every bad one.

use std::path::{Path, PathBuf};
use std::process::Command;

fn vllm() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>");
    dir.join("vllm")
}

fn corpus(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../daemon/tests/fixtures/config")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    files
}

#[test]
fn good_files_pass_and_bad_files_fail_with_a_line() {
    for f in corpus("good") {
        let out = Command::new(vllm())
            .args(["config", "validate"])
            .arg(&f)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for f in corpus("bad") {
        let out = Command::new(vllm())
            .args(["config", "validate"])
            .arg(&f)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", f.display());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("line "), "{}: {err}", f.display());
    }
}

fn validate(dir: &Path, name: &str, text: &str) -> (Option<i32>, String) {
    let f = dir.join(name);
    std::fs::write(&f, text).unwrap();
    let out = Command::new(vllm())
        .args(["config", "validate"])
        .arg(&f)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn refused_flags_fail_and_flags_without_effect_are_named() {
    let dir = std::env::temp_dir().join(format!("vllm-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // vllmd refuses swapping; so does the check.
    let (code, err) = validate(&dir, "swap.yaml", "port: 8000\npreemption-mode: swap\n");
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("line 2: preemption-mode: not supported yet: --preemption-mode"),
        "{err}"
    );
    // Valid, with the one warning line start-up would log.
    let (code, err) = validate(
        &dir,
        "eager.yaml",
        "enforce-eager: true\nswap-space: 2\nport: 8000\n",
    );
    assert_eq!(code, Some(0), "{err}");
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("warning:")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0].contains("--enforce-eager (") && warnings[0].contains("--swap-space ("),
        "{err}"
    );
    assert!(!warnings[0].contains("--port"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
