//! The YAML `--config` file: precedence, key styles, sizes, error lines and suggestions, and a
//! corpus of good and bad files under tests/fixtures/config.

use std::path::{Path, PathBuf};

use daemon::config::{validate_yaml, ConfigError, ConfigProblem, EnvSettings, ServeConfig};
use serde_json::json;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config")
}

fn load(args: &[&str]) -> Result<ServeConfig, ConfigError> {
    let argv = std::iter::once("vllmd")
        .chain(args.iter().copied())
        .map(String::from)
        .collect();
    ServeConfig::load(argv, &EnvSettings::default())
}

fn from_yaml(text: &str) -> Result<ServeConfig, ConfigError> {
    ServeConfig::from_yaml(text, &EnvSettings::default())
}

/// A config file of its own per test, so that tests can run in parallel.
fn temp_yaml(name: &str, text: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("vllmd-config-{}-{name}.yaml", std::process::id()));
    if let Err(e) = std::fs::write(&path, text) {
        panic!("cannot write {}: {e}", path.display());
    }
    path
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

#[test]
fn precedence_is_defaults_then_yaml_then_cli() {
    let file = temp_yaml("precedence", "port: 9000\nmax-model-len: 4k\nserved-model-name: [from-yaml]\nenforce-eager: true\nhost: 10.0.0.1\n");
    let c = match load(&[
        "--config",
        path_str(&file),
        "--port",
        "9100",
        "--served-model-name",
        "cli-a",
        "cli-b",
        "--no-enforce-eager",
    ]) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(c.frontend.port, 9100, "the command line wins");
    assert_eq!(
        c.model_config.served_model_name,
        ["cli-a", "cli-b"],
        "a list on the command line replaces the file's"
    );
    assert!(
        !c.model_config.enforce_eager,
        "--no-x on the command line wins over `x: true`"
    );
    assert_eq!(
        c.model_config.max_model_len,
        Some(4000),
        "the file wins over the default"
    );
    assert_eq!(c.frontend.host.as_deref(), Some("10.0.0.1"));
    assert_eq!(
        c.cache.gpu_memory_utilization, 0.9,
        "untouched flags keep the default"
    );
    let source = |flag: &str| {
        c.effective_settings()
            .into_iter()
            .find(|r| r.0 == flag)
            .map(|r| r.2)
    };
    assert_eq!(source("--port"), Some("cli"));
    assert_eq!(source("--max-model-len"), Some("yaml"));
    assert_eq!(source("--gpu-memory-utilization"), Some("default"));
    assert_eq!(source("--config"), Some("cli"));
    let _ = std::fs::remove_file(file);
}

#[test]
fn kebab_and_snake_keys_mean_the_same() {
    let kebab =
        from_yaml("max-num-seqs: 12\nenable-prefix-caching: false\ngpu-memory-utilization: 0.5\n");
    let snake =
        from_yaml("max_num_seqs: 12\nenable_prefix_caching: false\ngpu_memory_utilization: 0.5\n");
    for c in [kebab, snake] {
        let c = c.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.scheduler.max_num_seqs, Some(12));
        assert_eq!(c.cache.enable_prefix_caching, Some(false));
        assert_eq!(c.cache.gpu_memory_utilization, 0.5);
    }
}

#[test]
fn sizes_in_yaml_and_on_the_command_line() {
    for (text, want) in [
        ("1k", 1000),
        ("1K", 1024),
        ("25.6k", 25_600),
        ("2M", 2_097_152),
        ("4096", 4096),
    ] {
        let c =
            from_yaml(&format!("max-model-len: {text}\n")).map(|c| c.model_config.max_model_len);
        assert_eq!(c.ok(), Some(Some(want)), "yaml {text}");
        let c = load(&["--max-model-len", text]).map(|c| c.model_config.max_model_len);
        assert_eq!(c.ok(), Some(Some(want)), "cli {text}");
    }
}

#[test]
fn unknown_key_names_its_line_and_suggests_the_flag() {
    let file = temp_yaml(
        "typo",
        "port: 8000\n\n# context length\nmax-model-lenn: 4k\n",
    );
    let e = match load(&["--config", path_str(&file)]) {
        Err(e) => e,
        Ok(_) => panic!("a misspelt key must be refused"),
    };
    assert_eq!(e.line(), Some(4));
    assert_eq!(e.key(), Some("max-model-lenn"));
    assert_eq!(e.suggestion(), Some("max-model-len"));
    let text = e.to_string();
    assert!(
        text.contains("line 4") && text.contains("did you mean `max-model-len`?"),
        "{text}"
    );
    assert!(text.contains(path_str(&file)), "{text}");
    let _ = std::fs::remove_file(file);
}

#[test]
fn wrong_types_and_ranges_name_key_and_line() {
    let problems =
        validate_yaml("port: 8000\nmax-num-seqs: many\ngpu-memory-utilization: 2\nhost: [a, b]\n");
    let got: Vec<(Option<usize>, Option<&str>)> = problems
        .iter()
        .map(|p| (p.line, p.key.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            (Some(2), Some("max-num-seqs")),
            (Some(3), Some("gpu-memory-utilization")),
            (Some(4), Some("host"))
        ]
    );
    assert!(problems[0].message.contains("'many'"), "{}", problems[0]);
    assert!(
        problems[2].message.contains("got a list"),
        "{}",
        problems[2]
    );
}

#[test]
fn yaml_values_take_their_natural_yaml_forms() {
    let c = from_yaml(concat!(
        "hf-overrides: {a: {b: [1, 2]}}\n",
        "hf-overrides.c: x\n",
        "rope-scaling: '{\"factor\": 2.0}'\n",
        "compilation-config.level: 3\n",
        "allowed-origins: []\n",
        "api-key: single\n",
        "enable-chunked-prefill: ~\n",
        "swap-space: 1e0\n",
        "rope-theta: 1e6\n",
        "max-logprobs: -1\n",
    ));
    let c = c.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.model_config.hf_overrides,
        json!({"a": {"b": [1, 2]}, "c": "x"})
    );
    assert_eq!(c.model_config.rope_scaling, json!({"factor": 2.0}));
    assert_eq!(c.vllm.compilation_config, json!({"level": 3}));
    assert!(
        c.frontend.allowed_origins.is_empty(),
        "an explicit empty list replaces the default"
    );
    assert_eq!(c.frontend.api_key, ["single"]);
    assert_eq!(
        c.scheduler.enable_chunked_prefill, None,
        "null leaves the default"
    );
    assert_eq!(c.cache.swap_space, 1.0);
    assert_eq!(c.model_config.rope_theta, Some(1e6));
    assert_eq!(c.model_config.max_logprobs, usize::MAX);
}

#[test]
fn missing_config_file_is_an_error_naming_it() {
    match load(&["--config", "/nonexistent/vllmd.yaml"]) {
        Err(ConfigError::ReadConfig { path, .. }) => {
            assert_eq!(path, PathBuf::from("/nonexistent/vllmd.yaml"))
        }
        other => panic!("expected ReadConfig, got {other:?}"),
    }
}

/// One expected problem: line, key, suggestion, part of the message.
type Expected = (Option<usize>, Option<String>, Option<String>, String);

/// `# expect: LINE | KEY | SUGGESTION | MESSAGE PART` lines, `-` for "none".
fn expectations(text: &str) -> Vec<Expected> {
    let none_if_dash = |s: &str| (s != "-").then(|| s.to_string());
    text.lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|l| {
            let parts: Vec<&str> = l.splitn(4, " | ").collect();
            assert_eq!(parts.len(), 4, "malformed expectation: {l}");
            (
                parts[0].parse().ok(),
                none_if_dash(parts[1]),
                none_if_dash(parts[2]),
                parts[3].to_string(),
            )
        })
        .collect()
}

fn corpus(dir: &str) -> Vec<(PathBuf, String)> {
    let mut files: Vec<(PathBuf, String)> = std::fs::read_dir(fixtures().join(dir))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            (p, text)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn good_corpus_validates_and_loads() {
    let files = corpus("good");
    assert!(files.len() >= 5, "good corpus missing");
    for (path, text) in files {
        let problems = validate_yaml(&text);
        assert!(problems.is_empty(), "{}: {problems:?}", path.display());
        if let Err(e) = load(&["--config", path_str(&path)]).and_then(|c| c.check_supported()) {
            panic!("{}: {e}", path.display());
        }
    }
}

#[test]
fn good_corpus_values() {
    let c = load(&[
        "--config",
        path_str(&fixtures().join("good/kebab-case.yaml")),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.model_config.model,
        Some(PathBuf::from("/models/qwen.gguf"))
    );
    assert_eq!(c.model_config.served_model_name, ["qwen", "default"]);
    assert_eq!(c.frontend.api_key, ["secret-1", "secret-2"]);
    assert_eq!(c.frontend.allowed_origins, ["https://app.example"]);
    assert_eq!(c.model_config.max_model_len, Some(25_600));
    assert_eq!(c.scheduler.max_num_batched_tokens, Some(8192));
    assert_eq!(c.cache.swap_space, 2.0);
    assert_eq!(c.cache.block_size, Some(32));
    assert_eq!(c.cache.enable_prefix_caching, Some(false));
    assert!(c.model_config.enforce_eager);
    assert_eq!(c.model_config.seed, Some(1234));
    assert_eq!(
        c.frontend.chat_template.as_deref(),
        Some("{% for m in messages %}{{ m.content }}{% endfor %}\n")
    );
    assert_eq!(
        c.model_config.override_generation_config,
        json!({"temperature": 0.6, "top_p": 0.9})
    );
    assert_eq!(
        c.model_config.rope_scaling,
        json!({"rope_type": "dynamic", "factor": 2.0})
    );
    assert_eq!(c.vllm.compilation_config, json!({"level": 3}));
    assert_eq!(c.device, "cpu");

    let c = load(&[
        "--config",
        path_str(&fixtures().join("good/snake-case.yaml")),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.model_config.max_model_len, Some(2 * 1024 * 1024));
    assert_eq!(
        c.model_config.hf_overrides,
        json!({"rope_theta": 1_000_000, "extra": ["a", "b"]})
    );
    assert_eq!(c.cache.prefix_caching_hash_algo, "sha256_cbor_64bit");

    let c = load(&["--config", path_str(&fixtures().join("good/anchors.yaml"))])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.frontend.port, 7000);
    assert_eq!(c.frontend.api_key, ["alpha", "beta"]);
}

#[test]
fn bad_corpus_reports_each_expected_problem() {
    let files = corpus("bad");
    assert!(files.len() >= 8, "bad corpus missing");
    for (path, text) in files {
        let want = expectations(&text);
        assert!(!want.is_empty(), "{} has no expectations", path.display());
        let got: Vec<ConfigProblem> = validate_yaml(&text);
        assert_eq!(got.len(), want.len(), "{}: {got:#?}", path.display());
        for (p, (line, key, suggestion, part)) in got.iter().zip(&want) {
            let at = format!("{}: {p}", path.display());
            assert_eq!(p.line, *line, "{at}");
            assert_eq!(p.key, *key, "{at}");
            assert_eq!(p.suggestion, *suggestion, "{at}");
            assert!(p.message.contains(part.as_str()), "{at}: wanted `{part}`");
        }
        // Loading the same file as --config fails too (unsupported features at check_supported).
        let loaded = load(&["--config", path_str(&path)]).and_then(|c| c.check_supported());
        assert!(loaded.is_err(), "{} loaded", path.display());
    }
}
