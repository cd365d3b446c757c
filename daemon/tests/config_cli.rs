//! Command-line parsing of `vllmd`: reference defaults, every group, boolean and size forms,
//! suggestions for unknown flags, help and version.

use std::collections::HashMap;
use std::path::PathBuf;

use clap::error::ErrorKind;
use daemon::config::{ConfigError, EnvSettings, ServeConfig};
use serde_json::json;

fn load(args: &[&str]) -> Result<ServeConfig, ConfigError> {
    let argv = std::iter::once("vllmd")
        .chain(args.iter().copied())
        .map(String::from)
        .collect();
    ServeConfig::load(argv, &EnvSettings::default())
}

fn ok(args: &[&str]) -> ServeConfig {
    match load(args) {
        Ok(cfg) => cfg,
        Err(e) => panic!("{args:?} should parse: {e}"),
    }
}

fn err(args: &[&str]) -> ConfigError {
    match load(args) {
        Ok(_) => panic!("{args:?} should not parse"),
        Err(e) => e,
    }
}

#[test]
fn defaults_match_the_reference() {
    // Each expected value is the "Default:" of the vLLM server-arguments reference.
    let c = ok(&[]);
    assert_eq!(c.frontend.host, None);
    assert_eq!(c.frontend.port, 8000);
    assert_eq!(c.frontend.uvicorn_log_level, "info");
    assert!(!c.frontend.allow_credentials);
    assert_eq!(c.frontend.allowed_origins, ["*"]);
    assert_eq!(c.frontend.allowed_methods, ["*"]);
    assert_eq!(c.frontend.allowed_headers, ["*"]);
    assert!(c.frontend.api_key.is_empty());
    assert_eq!(c.frontend.chat_template_content_format, "auto");
    assert_eq!(c.frontend.response_role, "assistant");
    assert_eq!(c.frontend.ssl_cert_reqs, 0);
    assert_eq!(c.frontend.max_log_len, None);
    assert_eq!(c.frontend.h11_max_incomplete_event_size, 4_194_304);
    assert_eq!(c.frontend.h11_max_header_count, 256);
    assert_eq!(c.model_config.runner, "auto");
    assert_eq!(c.model_config.tokenizer_mode, "auto");
    assert_eq!(c.model_config.dtype, "auto");
    assert_eq!(c.model_config.seed, None);
    assert_eq!(c.model_config.max_model_len, None);
    assert_eq!(c.model_config.max_seq_len_to_capture, 8192);
    assert_eq!(c.model_config.max_logprobs, 20);
    assert_eq!(c.model_config.logprobs_mode, "raw_logprobs");
    assert_eq!(c.model_config.generation_config, "auto");
    assert_eq!(c.model_config.override_generation_config, json!({}));
    assert_eq!(c.model_config.rope_scaling, json!({}));
    assert_eq!(c.model_config.hf_overrides, json!({}));
    assert_eq!(c.model_config.model_impl, "auto");
    assert_eq!(c.load.load_format, "auto");
    assert!(c.load.use_tqdm_on_load);
    assert_eq!(c.load.pt_load_map_location, "cpu");
    assert_eq!(c.decoding.guided_decoding_backend, "auto");
    assert_eq!(c.decoding.reasoning_parser, "");
    assert_eq!(c.parallel.pipeline_parallel_size, 1);
    assert_eq!(c.parallel.tensor_parallel_size, 1);
    assert_eq!(c.parallel.data_parallel_size, 1);
    assert_eq!(c.parallel.data_parallel_backend, "mp");
    assert_eq!(c.parallel.eplb_window_size, 1000);
    assert_eq!(c.parallel.eplb_step_interval, 3000);
    assert_eq!(c.cache.block_size, None);
    assert_eq!(c.cache.gpu_memory_utilization, 0.9);
    assert_eq!(c.cache.swap_space, 4.0);
    assert_eq!(c.cache.kv_cache_dtype, "auto");
    assert_eq!(c.cache.enable_prefix_caching, None);
    assert_eq!(c.cache.prefix_caching_hash_algo, "builtin");
    assert_eq!(c.cache.cpu_offload_gb, 0.0);
    assert_eq!(c.multimodal.mm_processor_cache_gb, 4.0);
    assert!(!c.lora.enable_lora);
    assert_eq!(c.lora.max_loras, 1);
    assert_eq!(c.lora.max_lora_rank, 16);
    assert_eq!(c.lora.lora_extra_vocab_size, 256);
    assert_eq!(c.scheduler.max_num_batched_tokens, None);
    assert_eq!(c.scheduler.max_num_seqs, None);
    assert_eq!(c.scheduler.max_num_partial_prefills, 1);
    assert_eq!(c.scheduler.max_long_partial_prefills, 1);
    assert_eq!(c.scheduler.long_prefill_token_threshold, 0);
    assert_eq!(c.scheduler.scheduler_delay_factor, 0.0);
    assert_eq!(c.scheduler.scheduling_policy, "fcfs");
    assert_eq!(c.scheduler.preemption_mode, None);
    assert_eq!(c.scheduler.enable_chunked_prefill, None);
    assert_eq!(c.scheduler.scheduler_cls, "vllm.core.scheduler.Scheduler");
    assert_eq!(c.vllm.speculative_config, None);
    assert_eq!(c.vllm.additional_config, json!({}));
    assert_eq!(c.api_server_count, 1);
    assert!(c.disable_log_requests);
    assert!(!c.enable_log_requests && !c.disable_log_stats && !c.headless);
    assert_eq!(c.device, "auto");
    assert_eq!(c.model_tag, None);
    assert_eq!(c.config, None);
    assert!(c.check_supported().is_ok());
}

#[test]
fn flags_of_every_group_parse() {
    let c = ok(&[
        "model.gguf",
        "--host",
        "127.0.0.1",
        "--port",
        "9000",
        "--served-model-name",
        "a",
        "b",
        "--allow-credentials",
        "--root-path",
        "/v",
        "--max-log-len",
        "100",
        "--enable-request-id-headers",
        "--tokenizer",
        "tok.json",
        "--dtype",
        "bfloat16",
        "--seed",
        "7",
        "--max-logprobs",
        "-1",
        "--load-format",
        "gguf",
        "--guided-decoding-backend",
        "xgrammar",
        "--block-size",
        "32",
        "--gpu-memory-utilization",
        "0.5",
        "--swap-space",
        "1.5",
        "--no-enable-prefix-caching",
        "--prefix-caching-hash-algo",
        "sha256",
        "--max-num-seqs",
        "64",
        "--enable-chunked-prefill",
        "--max-num-partial-prefills",
        "4",
        "--max-long-partial-prefills",
        "2",
        "--scheduling-policy",
        "priority",
        "--preemption-mode",
        "swap",
        "--enforce-eager",
        "--device",
        "cpu",
        "--enable-log-requests",
        "--disable-log-stats",
        "--otlp-traces-endpoint",
        "http://otel",
        "--collect-detailed-traces",
        "model,worker",
        "-q",
        "gguf",
    ]);
    assert_eq!(c.model_tag, Some(PathBuf::from("model.gguf")));
    assert_eq!(c.model_config.model, Some(PathBuf::from("model.gguf")));
    assert_eq!(c.frontend.host.as_deref(), Some("127.0.0.1"));
    assert_eq!(c.frontend.port, 9000);
    assert_eq!(c.model_config.served_model_name, ["a", "b"]);
    assert!(c.frontend.allow_credentials && c.frontend.enable_request_id_headers);
    assert_eq!(c.frontend.root_path.as_deref(), Some("/v"));
    assert_eq!(c.frontend.max_log_len, Some(100));
    assert_eq!(c.model_config.tokenizer, Some(PathBuf::from("tok.json")));
    assert_eq!(c.model_config.dtype, "bfloat16");
    assert_eq!(c.model_config.seed, Some(7));
    assert_eq!(c.model_config.max_logprobs, usize::MAX);
    assert_eq!(c.model_config.quantization.as_deref(), Some("gguf"));
    assert_eq!(c.load.load_format, "gguf");
    assert_eq!(c.decoding.guided_decoding_backend, "xgrammar");
    assert_eq!(c.cache.block_size, Some(32));
    assert_eq!(c.cache.gpu_memory_utilization, 0.5);
    assert_eq!(c.cache.swap_space, 1.5);
    assert_eq!(c.cache.enable_prefix_caching, Some(false));
    assert_eq!(c.cache.prefix_caching_hash_algo, "sha256");
    assert_eq!(c.scheduler.max_num_seqs, Some(64));
    assert_eq!(c.scheduler.enable_chunked_prefill, Some(true));
    assert_eq!(
        (
            c.scheduler.max_num_partial_prefills,
            c.scheduler.max_long_partial_prefills
        ),
        (4, 2)
    );
    assert_eq!(c.scheduler.scheduling_policy, "priority");
    assert_eq!(c.scheduler.preemption_mode.as_deref(), Some("swap"));
    assert!(c.model_config.enforce_eager && c.enable_log_requests && c.disable_log_stats);
    assert_eq!(c.device, "cpu");
    assert_eq!(
        c.observability.otlp_traces_endpoint.as_deref(),
        Some("http://otel")
    );
    assert_eq!(
        c.observability.collect_detailed_traces.as_deref(),
        Some("model,worker")
    );
}

#[test]
fn boolean_flags_take_all_three_forms() {
    assert!(ok(&["--enforce-eager"]).model_config.enforce_eager);
    assert!(
        !ok(&["--enforce-eager", "--no-enforce-eager"])
            .model_config
            .enforce_eager
    );
    assert!(!ok(&["--enforce-eager=false"]).model_config.enforce_eager);
    assert!(
        ok(&["--no-enforce-eager", "--enforce-eager=true"])
            .model_config
            .enforce_eager
    );
    // The flag does not swallow the positional model that follows it.
    let c = ok(&["--enforce-eager", "m.gguf"]);
    assert!(c.model_config.enforce_eager);
    assert_eq!(c.model_tag, Some(PathBuf::from("m.gguf")));
    // Default-true flags can be turned off.
    assert!(!ok(&["--no-use-tqdm-on-load"]).load.use_tqdm_on_load);
    assert!(!ok(&["--no-disable-log-requests"]).disable_log_requests);
    // Tri-state flags stay unset unless given.
    assert_eq!(
        ok(&["--enable-prefix-caching"]).cache.enable_prefix_caching,
        Some(true)
    );
    assert_eq!(
        ok(&["--no-enable-chunked-prefill"])
            .scheduler
            .enable_chunked_prefill,
        Some(false)
    );
    assert!(matches!(
        err(&["--enforce-eager=maybe"]),
        ConfigError::Cli(_)
    ));
    // `--no-` only exists for boolean flags.
    assert!(matches!(err(&["--no-port"]), ConfigError::Cli(_)));
}

#[test]
fn human_sizes_on_the_command_line() {
    for (text, want) in [
        ("1k", 1000),
        ("1K", 1024),
        ("25.6k", 25_600),
        ("2M", 2_097_152),
        ("4096", 4096),
    ] {
        assert_eq!(
            ok(&["--max-model-len", text]).model_config.max_model_len,
            Some(want),
            "{text}"
        );
    }
    assert_eq!(
        ok(&["--max-num-batched-tokens", "8k"])
            .scheduler
            .max_num_batched_tokens,
        Some(8000)
    );
    let e = err(&["--max-model-len", "1.5K"]).to_string();
    assert!(e.contains("--max-model-len") && e.contains("1.5k"), "{e}");
}

#[test]
fn values_are_checked_against_choices_and_ranges() {
    for bad in [
        &["--dtype", "fp64"][..],
        &["--gpu-memory-utilization", "1.5"],
        &["--gpu-memory-utilization", "0"],
        &["--block-size", "7"],
        &["--port", "70000"],
        &["--tensor-parallel-size", "0"],
        &["--scheduling-policy", "lifo"],
        &["--collect-detailed-traces", "gpu"],
        &["--device", "tpu"],
        &["--max-long-partial-prefills", "3"],
    ] {
        assert!(load(bad).is_err(), "{bad:?} should be refused");
    }
    let e = err(&["--max-long-partial-prefills", "3"]);
    assert_eq!(e.key(), Some("max-long-partial-prefills"));
}

#[test]
fn unknown_flags_suggest_the_closest() {
    let ConfigError::Cli(e) = err(&["--max-model-lenn", "5"]) else {
        panic!("expected a clap error")
    };
    assert_eq!(e.kind(), ErrorKind::UnknownArgument);
    let text = e.to_string();
    assert!(
        text.contains("--max-model-lenn") && text.contains("'--max-model-len'"),
        "{text}"
    );
    let ConfigError::Cli(e) = err(&["--gpu-memory-utilisation", "0.8"]) else {
        panic!("expected a clap error")
    };
    assert!(e.to_string().contains("'--gpu-memory-utilization'"), "{e}");
}

#[test]
fn vllm_spellings_short_forms_and_repeats() {
    let c = ok(&[
        "--max_model_len",
        "2k",
        "--tensor_parallel_size=1",
        "-tp",
        "1",
        "-pp=1",
        "-asc",
        "1",
    ]);
    assert_eq!(c.model_config.max_model_len, Some(2000));
    let c = ok(&[
        "-tp", "4", "-dp", "2", "-dpa", "10.0.0.1", "-dpp", "5555", "-dpb", "ray", "-pp", "3",
    ]);
    assert_eq!(
        (
            c.parallel.tensor_parallel_size,
            c.parallel.data_parallel_size,
            c.parallel.pipeline_parallel_size
        ),
        (4, 2, 3)
    );
    assert_eq!(
        c.parallel.data_parallel_address.as_deref(),
        Some("10.0.0.1")
    );
    assert_eq!(c.parallel.data_parallel_rpc_port, Some(5555));
    assert_eq!(c.parallel.data_parallel_backend, "ray");
    // As with argparse, the last of a repeated flag wins; list flags accumulate.
    assert_eq!(ok(&["--port", "1", "--port", "2"]).frontend.port, 2);
    assert_eq!(
        ok(&["--api-key", "a", "--api-key", "b", "c"])
            .frontend
            .api_key,
        ["a", "b", "c"]
    );
    // The CORS lists also take vLLM's JSON form.
    assert_eq!(
        ok(&[
            "--allowed-origins",
            r#"["https://a.example","https://b.example"]"#
        ])
        .frontend
        .allowed_origins,
        ["https://a.example", "https://b.example"]
    );
    assert_eq!(
        ok(&["--allowed-methods", "GET", "POST"])
            .frontend
            .allowed_methods,
        ["GET", "POST"]
    );
    assert!(load(&["--allowed-headers", "[1, 2"]).is_err());
}

#[test]
fn the_positional_model_wins_over_model() {
    let c = ok(&["--model", "a.gguf", "b.gguf"]);
    assert_eq!(c.model_config.model, Some(PathBuf::from("b.gguf")));
    let c = ok(&["--model", "a.gguf"]);
    assert_eq!(
        (c.model_tag, c.model_config.model),
        (None, Some(PathBuf::from("a.gguf")))
    );
}

#[test]
fn api_key_falls_back_to_the_environment() {
    let mut vars = HashMap::new();
    vars.insert("VLLM_API_KEY".to_string(), "from-env".to_string());
    let env = EnvSettings::from_map(&vars).unwrap_or_default();
    let argv = |a: &[&str]| {
        std::iter::once("vllmd")
            .chain(a.iter().copied())
            .map(String::from)
            .collect()
    };
    let c = ServeConfig::load(argv(&[]), &env).map_err(|e| e.to_string());
    assert_eq!(
        c.as_ref().map(|c| c.frontend.api_key.clone()),
        Ok(vec!["from-env".to_string()])
    );
    let row = c.ok().and_then(|c| {
        c.effective_settings()
            .into_iter()
            .find(|r| r.0 == "--api-key")
    });
    assert_eq!(row, Some(("--api-key".into(), "<redacted>".into(), "env")));
    let c = ServeConfig::load(argv(&["--api-key", "cli"]), &env).map(|c| c.frontend.api_key);
    assert_eq!(c.ok(), Some(vec!["cli".to_string()]));
}

#[test]
fn help_is_grouped_and_version_works() {
    let ConfigError::Cli(e) = err(&["--help"]) else {
        panic!("expected clap's help")
    };
    assert_eq!(e.kind(), ErrorKind::DisplayHelp);
    let help = e.to_string();
    let headings = [
        "Frontend:",
        "ModelConfig:",
        "LoadConfig:",
        "DecodingConfig:",
        "ParallelConfig:",
        "CacheConfig:",
        "MultiModalConfig:",
        "LoRAConfig:",
        "ObservabilityConfig:",
        "SchedulerConfig:",
        "VllmConfig:",
        "DeviceConfig:",
    ];
    let mut last = 0;
    for h in headings {
        let at = help
            .find(&format!("\n{h}\n"))
            .unwrap_or_else(|| panic!("no heading {h} in help"));
        assert!(at > last, "{h} out of order");
        last = at;
    }
    assert!(help.contains("--gpu-memory-utilization <GPU_MEMORY_UTILIZATION>"));
    assert!(help.contains("--enforce-eager[=<BOOL>]"));
    assert!(help.contains("-O, --compilation-config"));
    assert!(help.contains("--no-flag"));
    // --model's help names every architecture the engine loads (help wraps lines: compare
    // without whitespace).
    let flat: String = help.split_whitespace().collect();
    for arch in engine::Architecture::ALL {
        assert!(
            flat.contains(arch.hf_name()),
            "--help does not list {}",
            arch.hf_name()
        );
    }
    let ConfigError::Cli(e) = err(&["--version"]) else {
        panic!("expected clap's version")
    };
    assert_eq!(e.kind(), ErrorKind::DisplayVersion);
    assert!(e.to_string().starts_with("vllmd "));
}

#[test]
fn effective_settings_report_value_and_source() {
    let c = ok(&["m.gguf", "--port", "9000", "--max-logprobs", "-1"]);
    let rows = c.effective_settings();
    let find = |flag: &str| rows.iter().find(|r| r.0 == flag).cloned();
    assert_eq!(
        find("--port"),
        Some(("--port".into(), "9000".into(), "cli"))
    );
    assert_eq!(
        find("--host"),
        Some(("--host".into(), "None".into(), "default"))
    );
    assert_eq!(
        find("--max-logprobs"),
        Some(("--max-logprobs".into(), "-1".into(), "cli"))
    );
    assert_eq!(
        find("--allowed-origins"),
        Some(("--allowed-origins".into(), "[\"*\"]".into(), "default"))
    );
    assert_eq!(
        find("MODEL_TAG"),
        Some(("MODEL_TAG".into(), "m.gguf".into(), "cli"))
    );
    assert_eq!(
        find("--model"),
        Some(("--model".into(), "m.gguf".into(), "cli"))
    );
    // One row per flag of the help, including every group.
    assert_eq!(
        rows.len(),
        ServeConfig::cli_command().get_arguments().count()
    );
}

#[test]
fn the_serde_schema_is_the_flag_set() {
    // YAML keys are serde's field names; they must be exactly the clap ids, or the file and
    // the command line would drift apart.
    let cmd = ServeConfig::cli_command();
    let mut ids: Vec<String> = cmd
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .collect();
    let value = serde_json::to_value(ServeConfig::default()).unwrap_or_default();
    let mut keys: Vec<String> = value
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    ids.sort();
    keys.sort();
    assert_eq!(ids, keys);
    assert!(ids.len() >= 173, "only {} flags", ids.len());
    // And the value round-trips through serde unchanged.
    let c = ok(&[
        "--hf-overrides",
        r#"{"a": [1, {"b": null}]}"#,
        "--rope-theta",
        "1e6",
        "--swap-space",
        "0.25",
    ]);
    let v = serde_json::to_value(&c).unwrap_or_default();
    let back: Option<ServeConfig> = serde_json::from_value(v.clone()).ok();
    assert_eq!(
        back.map(|b| serde_json::to_value(b).unwrap_or_default()),
        Some(v)
    );
}
