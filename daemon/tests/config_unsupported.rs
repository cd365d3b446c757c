//! Flags that parse but name features vllm-rs does not have yet.

use daemon::config::{ConfigError, EnvSettings, ServeConfig};

fn load(args: &[&str]) -> ServeConfig {
    let argv = std::iter::once("vllmd")
        .chain(args.iter().copied())
        .map(String::from)
        .collect();
    ServeConfig::load(argv, &EnvSettings::default())
        .unwrap_or_else(|e| panic!("{args:?} should parse: {e}"))
}

#[test]
fn unsupported_flags_are_rejected_one_line_each() {
    let c = load(&[
        "--enable-lora",
        "-tp",
        "2",
        "--kv-cache-dtype",
        "fp8",
        "--speculative-config.method",
        "ngram",
    ]);
    match c.check_supported() {
        Err(ConfigError::Unsupported { flags }) => {
            assert_eq!(
                flags,
                [
                    "--tensor-parallel-size",
                    "--kv-cache-dtype",
                    "--enable-lora",
                    "--speculative-config"
                ]
            );
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    let text = c
        .check_supported()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert_eq!(
        text,
        "not supported yet: --tensor-parallel-size\nnot supported yet: --kv-cache-dtype\n\
         not supported yet: --enable-lora\nnot supported yet: --speculative-config"
    );
}

#[test]
fn each_unsupported_feature_is_named() {
    for (args, flag) in [
        (
            &["--pipeline-parallel-size", "2"][..],
            "--pipeline-parallel-size",
        ),
        (&["-dp", "2"], "--data-parallel-size"),
        (&["--quantization", "awq"], "--quantization"),
        (
            &["--limit-mm-per-prompt.image", "2"],
            "--limit-mm-per-prompt",
        ),
        (
            &["--kv-transfer-config", r#"{"kv_connector": "x"}"#],
            "--kv-transfer-config",
        ),
        (
            &["--distributed-executor-backend", "ray"],
            "--distributed-executor-backend",
        ),
        (&["--load-format", "tensorizer"], "--load-format"),
        (&["--lora-modules", "a=/p"], "--lora-modules"),
        (&["--max-loras", "2"], "--max-loras"),
        (&["--reasoning-parser", "glm45"], "--reasoning-parser"),
        (&["--tool-call-parser", "granite"], "--tool-call-parser"),
        (&["--tool-parser-plugin", "p.py"], "--tool-parser-plugin"),
        (
            &["--guided-decoding-backend", "xgrammar"],
            "--guided-decoding-backend",
        ),
        (&["--headless"], "--headless"),
        (&["--async-scheduling"], "--async-scheduling"),
    ] {
        let got = load(args).check_supported().err().map(|e| e.to_string());
        assert_eq!(got, Some(format!("not supported yet: {flag}")), "{args:?}");
    }
}

#[test]
fn supported_values_of_partly_supported_flags_pass() {
    for args in [
        &["-q", "gguf"][..],
        &["--load-format", "safetensors"],
        &["--load-format", "dummy"],
        &["--reasoning-parser", "qwen3"],
        &["--tool-call-parser", "qwen3_coder"],
        &["--guided-decoding-backend", "guidance"],
        &["--distributed-executor-backend", "uni"],
        &["--runner", "generate"],
        &["--runner", "pooling", "--convert", "embed"],
        &["--task", "embedding"],
        &["--task", "score"],
        &["--convert", "classify"],
        &["-tp", "1", "--kv-cache-dtype", "auto", "--no-enable-lora"],
        &[
            "--enable-prefix-caching",
            "--scheduling-policy",
            "priority",
            "--block-size",
            "32",
            "--max-num-seqs",
            "8",
        ],
    ] {
        if let Err(e) = load(args).check_supported() {
            panic!("{args:?}: {e}");
        }
    }
}

#[test]
fn flags_without_effect_are_listed_not_rejected() {
    let c = load(&[
        "-O3",
        "--trust-remote-code",
        "--max-seq-len-to-capture",
        "1024",
        "--port",
        "1",
    ]);
    assert!(c.check_supported().is_ok());
    let named: Vec<String> = c.no_effect_flags().into_iter().map(|(f, _)| f).collect();
    assert_eq!(
        named,
        [
            "--trust-remote-code",
            "--max-seq-len-to-capture",
            "--compilation-config"
        ]
    );
    assert!(load(&[]).no_effect_flags().is_empty());
}

#[test]
fn preemption_by_swapping_is_refused_by_the_server_and_the_yaml_check_alike() {
    let got = load(&["--preemption-mode", "swap"])
        .check_supported()
        .err()
        .map(|e| e.to_string());
    assert_eq!(got.as_deref(), Some("not supported yet: --preemption-mode"));
    assert!(load(&["--preemption-mode", "recompute"])
        .check_supported()
        .is_ok());
    let problems = daemon::config::validate_yaml("port: 8000\npreemption-mode: swap\n");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(
        (problems[0].line, problems[0].message.as_str()),
        (Some(2), "not supported yet: --preemption-mode")
    );
}
