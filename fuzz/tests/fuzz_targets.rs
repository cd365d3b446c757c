//! Runs every fuzz target for a bounded time (`VLLM_FUZZ_SECONDS`, 10 s by default) over
//! seeded mutations of its corpus; see `fuzz/src/driver.rs`. `scripts/fuzz.sh TARGET SECONDS`
//! runs one target longer with a fresh seed.

use std::path::Path;

use fuzz::targets::{self, TARGETS};
use fuzz::Settings;

/// One allocation over the cap aborts the run with the input saved (see `fuzz::alloc`).
#[global_allocator]
static ALLOC: fuzz::alloc::CappedAlloc = fuzz::alloc::CappedAlloc;

fn run(name: &str) {
    let target = targets::target(name).expect("known target");
    if matches!(name, "completions" | "chat" | "tokenize") {
        if let Err(why) = targets::request_app() {
            assert!(!engine::paths::test_deps_required(), "fuzz {name}: {why}");
            eprintln!("skipped: fuzz {name}: {why}");
            return;
        }
    }
    let (corpus, dictionary) = targets::corpus(name);
    let settings =
        Settings::from_env(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures"));
    let report = fuzz::driver::run(target, &corpus, &dictionary, &settings);
    println!("{report} [{} seeds]", corpus.len());
    assert!(report.failures.is_empty(), "{report}");
    assert!(report.iterations > 0, "{report}");
}

#[test]
fn every_target_has_a_test() {
    let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
    let source = include_str!("fuzz_targets.rs");
    for name in names {
        assert!(
            source.contains(&format!("fn fuzz_{name}()")),
            "no test for target {name}"
        );
    }
}

#[test]
fn fuzz_gguf() {
    run("gguf");
}

#[test]
fn fuzz_tokenizer() {
    run("tokenizer");
}

#[test]
fn fuzz_safetensors() {
    run("safetensors");
}

#[test]
fn fuzz_chat_template() {
    run("chat_template");
}

#[test]
fn fuzz_completions() {
    run("completions");
}

#[test]
fn fuzz_chat() {
    run("chat");
}

#[test]
fn fuzz_tokenize() {
    run("tokenize");
}

#[test]
fn fuzz_yaml_config() {
    run("yaml_config");
}
