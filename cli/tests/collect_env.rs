//! `vllm collect-env` on this machine: every section, secrets redacted, exit 0 without a GPU.

mod common;

use std::process::Command;

#[test]
fn prints_every_section_and_redacts_secrets() {
    let out = Command::new(common::binary("vllm"))
        .arg("collect-env")
        .env("VLLM_API_KEY", "sk-test-should-not-leak")
        .env("HF_TOKEN", "hf_should_not_leak")
        .env("OMP_NUM_THREADS", "3")
        .output()
        .expect("run vllm collect-env");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for section in [
        "Operating system",
        "CPU",
        "Memory",
        "vllm-rs",
        "NVIDIA GPUs",
        "CUDA libraries",
        "Environment variables",
    ] {
        assert!(
            text.contains(&format!("== {section} ==")),
            "{section} missing:\n{text}"
        );
    }
    for key in [
        "kernel",
        "glibc",
        "logical CPUs",
        "relevant flags",
        "git commit",
        "build profile",
        "rust toolchain",
        "libcuda",
        "libcublas",
        "libnvrtc",
    ] {
        assert!(text.contains(key), "{key} missing:\n{text}");
    }
    assert!(
        !text.contains("sk-test-should-not-leak") && !text.contains("hf_should_not_leak"),
        "{text}"
    );
    assert!(text.contains("VLLM_API_KEY") && text.contains("<redacted>"));
    assert!(text.contains("OMP_NUM_THREADS") && text.contains(": 3"));

    let out = Command::new(common::binary("vllm"))
        .args(["collect-env", "--json"])
        .env("VLLM_API_KEY", "sk-x-secret")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["Environment variables"]["VLLM_API_KEY"], "<redacted>");
    assert!(v["NVIDIA GPUs"].is_object());
}
