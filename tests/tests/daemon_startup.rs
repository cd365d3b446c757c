//! `vllmd` start-up as a user meets it: the default model comes up and answers; a missing
//! default model or a broken file gives one clear line and a non-zero exit, never a panic.

use std::process::Command;
use std::time::Duration;

use e2e_tests::{binary, Server};

fn default_model_present() -> bool {
    engine::paths::test_model(engine::paths::DEFAULT_MODEL_FILE).is_some()
}

#[test]
fn serves_the_default_model() {
    if !default_model_present() {
        return;
    }
    let server = Server::start(&[], Duration::from_secs(120));
    assert_eq!(server.get("/health").0, 200);
    let (status, body) = server.get("/v1/models");
    assert_eq!(status, 200);
    let v: serde_json::Value =
        serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(v["data"][0]["id"], "SmolLM2-135M-Instruct.Q4_1.gguf");
    // SmolLM2's GGUF declares a context of 8192 tokens.
    assert_eq!(v["data"][0]["max_model_len"], 8192);
}

#[test]
fn missing_default_model_says_how_to_fetch_it() {
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(binary("vllmd"))
        .env("VLLM_CACHE_ROOT", empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("scripts/fetch-models.sh"), "{err}");
}

#[test]
fn corrupt_model_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.gguf");
    // A valid magic and version, then the file ends inside the header.
    std::fs::write(&path, b"GGUF\x03\x00\x00\x00\x10").unwrap();
    let out = Command::new(binary("vllmd"))
        .args(["--model", path.to_str().unwrap()])
        .env("VLLM_LOGGING_LEVEL", "error")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken.gguf") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn unsupported_architecture_names_the_file_and_arch() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"architectures": ["GPT2LMHeadModel"], "vocab_size": 10}"#,
    )
    .unwrap();
    let out = Command::new(binary("vllmd"))
        .args(["--model", dir.path().to_str().unwrap()])
        .env("VLLM_LOGGING_LEVEL", "error")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("GPT2LMHeadModel") && err.contains("config.json"),
        "{err}"
    );
}
