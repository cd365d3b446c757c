//! The whole flag table, walked: every flag of `vllmd` (`vllm serve`) is set away from its
//! default once, and then
//! - a flag that works changes what the server will do (its [`ServePlan`]);
//! - a refused flag is refused with `not supported yet: --flag`, by the command line and by the
//!   YAML check behind `vllm config validate` alike, while the values it allows pass;
//! - a flag without effect is accepted, named (with its reason) in the one start-up warning line,
//!   and changes nothing at all in the plan.

use std::collections::BTreeSet;

use daemon::config::{validate_yaml, ConfigError, EnvSettings, Fate, ServeConfig, FATES};
use daemon::serve::ServePlan;
use serde_json::Value;

/// A value away from the default for each flag that is not a plain boolean, and the flags a
/// value needs alongside (`--max-long-partial-prefills` cannot exceed `--max-num-partial-prefills`).
const SAMPLES: &[(&str, &[&str], &[&str])] = &[
    ("api_server_count", &["2"], &[]),
    ("host", &["127.0.0.1"], &[]),
    ("port", &["9001"], &[]),
    ("uds", &["/tmp/vllmd-test.sock"], &[]),
    ("uvicorn_log_level", &["warning"], &[]),
    ("allowed_origins", &["https://a.example"], &[]),
    ("allowed_methods", &["GET"], &[]),
    ("allowed_headers", &["x-a"], &[]),
    ("api_key", &["k"], &[]),
    ("lora_modules", &["a=/p"], &[]),
    ("chat_template", &["{{ messages }}"], &[]),
    ("chat_template_content_format", &["string"], &[]),
    ("response_role", &["bot"], &[]),
    ("ssl_keyfile", &["k.pem"], &[]),
    ("ssl_certfile", &["c.pem"], &[]),
    ("ssl_ca_certs", &["ca.pem"], &[]),
    ("ssl_cert_reqs", &["2"], &[]),
    ("root_path", &["/api"], &[]),
    ("middleware", &["m.M"], &[]),
    // Parsers vllm-rs does not ship are refused; the shipped ones work (tests/python).
    ("tool_call_parser", &["granite"], &[]),
    (
        "enable_auto_tool_choice",
        &["true"],
        &["--tool-call-parser", "hermes"],
    ),
    ("tool_parser_plugin", &["p.py"], &[]),
    ("tool_server", &["demo"], &[]),
    ("log_config_file", &["log.json"], &[]),
    ("max_log_len", &["10"], &[]),
    ("h11_max_incomplete_event_size", &["100000"], &[]),
    ("h11_max_header_count", &["10"], &[]),
    ("model", &["m.gguf"], &[]),
    ("runner", &["draft"], &[]),
    ("convert", &["reward"], &[]),
    ("task", &["reward"], &[]),
    ("tokenizer", &["tok.json"], &[]),
    ("tokenizer_mode", &["mistral"], &[]),
    ("dtype", &["float32"], &[]),
    ("seed", &["3"], &[]),
    ("hf_config_path", &["config.json"], &[]),
    ("allowed_local_media_path", &["/media"], &[]),
    ("revision", &["main"], &[]),
    ("code_revision", &["main"], &[]),
    (
        "rope_scaling",
        &[r#"{"rope_type": "linear", "factor": 2.0}"#],
        &[],
    ),
    ("rope_theta", &["500000"], &[]),
    ("tokenizer_revision", &["main"], &[]),
    ("max_model_len", &["1k"], &[]),
    ("quantization", &["awq"], &[]),
    ("max_seq_len_to_capture", &["1024"], &[]),
    ("max_logprobs", &["5"], &[]),
    ("logprobs_mode", &["raw_logits"], &[]),
    ("served_model_name", &["alias"], &[]),
    ("config_format", &["mistral"], &[]),
    ("hf_token", &["secret"], &[]),
    ("hf_overrides", &[r#"{"rope_theta": 5.0}"#], &[]),
    ("override_neuron_config", &[r#"{"a": 1}"#], &[]),
    (
        "override_pooler_config",
        &[r#"{"pooling_type": "MEAN"}"#],
        &[],
    ),
    ("logits_processor_pattern", &[".*"], &[]),
    ("generation_config", &["vllm"], &[]),
    (
        "override_generation_config",
        &[r#"{"temperature": 0.5}"#],
        &[],
    ),
    ("model_impl", &["transformers"], &[]),
    ("override_attention_dtype", &["float16"], &[]),
    ("logits_processors", &["a.B"], &[]),
    ("load_format", &["pt"], &[]),
    ("download_dir", &["/d"], &[]),
    ("model_loader_extra_config", &[r#"{"a": 1}"#], &[]),
    ("ignore_patterns", &["original/**"], &[]),
    ("pt_load_map_location", &["cuda"], &[]),
    ("guided_decoding_backend", &["xgrammar"], &[]),
    ("reasoning_parser", &["glm45"], &[]),
    ("distributed_executor_backend", &["ray"], &[]),
    ("pipeline_parallel_size", &["2"], &[]),
    ("tensor_parallel_size", &["2"], &[]),
    ("data_parallel_size", &["2"], &[]),
    ("data_parallel_rank", &["0"], &[]),
    ("data_parallel_start_rank", &["0"], &[]),
    ("data_parallel_size_local", &["1"], &[]),
    ("data_parallel_address", &["10.0.0.1"], &[]),
    ("data_parallel_rpc_port", &["13345"], &[]),
    ("data_parallel_backend", &["ray"], &[]),
    ("num_redundant_experts", &["1"], &[]),
    ("eplb_window_size", &["10"], &[]),
    ("eplb_step_interval", &["10"], &[]),
    ("max_parallel_loading_workers", &["2"], &[]),
    ("worker_cls", &["w.W"], &[]),
    ("worker_extension_cls", &["w.E"], &[]),
    ("block_size", &["32"], &[]),
    ("gpu_memory_utilization", &["0.5"], &[]),
    ("swap_space", &["1"], &[]),
    ("kv_cache_dtype", &["fp8"], &[]),
    ("num_gpu_blocks_override", &["100"], &[]),
    ("enable_prefix_caching", &["false"], &[]),
    ("prefix_caching_hash_algo", &["sha256"], &[]),
    ("cpu_offload_gb", &["1"], &[]),
    ("mamba_cache_dtype", &["float32"], &[]),
    ("mamba_ssm_cache_dtype", &["float32"], &[]),
    ("limit_mm_per_prompt", &[r#"{"image": 2}"#], &[]),
    ("media_io_kwargs", &[r#"{"video": {"num_frames": 4}}"#], &[]),
    ("mm_processor_kwargs", &[r#"{"num_crops": 4}"#], &[]),
    ("mm_processor_cache_gb", &["1"], &[]),
    ("max_loras", &["2"], &[]),
    ("max_lora_rank", &["8"], &[]),
    ("lora_extra_vocab_size", &["1"], &[]),
    ("lora_dtype", &["float16"], &[]),
    ("max_cpu_loras", &["2"], &[]),
    ("default_mm_loras", &[r#"{"image": "/lora"}"#], &[]),
    ("show_hidden_metrics_for_version", &["0.9"], &[]),
    ("otlp_traces_endpoint", &["http://otel:4317"], &[]),
    ("collect_detailed_traces", &["all"], &[]),
    ("max_num_batched_tokens", &["4096"], &[]),
    ("max_num_seqs", &["8"], &[]),
    ("max_num_partial_prefills", &["2"], &[]),
    (
        "max_long_partial_prefills",
        &["2"],
        &["--max-num-partial-prefills", "2"],
    ),
    ("cuda_graph_sizes", &["8"], &[]),
    ("long_prefill_token_threshold", &["100"], &[]),
    ("num_lookahead_slots", &["1"], &[]),
    ("scheduler_delay_factor", &["0.5"], &[]),
    ("preemption_mode", &["swap"], &[]),
    ("scheduling_policy", &["priority"], &[]),
    ("enable_chunked_prefill", &["false"], &[]),
    ("scheduler_cls", &["s.S"], &[]),
    ("speculative_config", &[r#"{"method": "ngram"}"#], &[]),
    ("kv_transfer_config", &[r#"{"kv_connector": "x"}"#], &[]),
    (
        "kv_events_config",
        &[r#"{"enable_kv_cache_events": true}"#],
        &[],
    ),
    ("compilation_config", &[r#"{"level": 3}"#], &[]),
    ("additional_config", &[r#"{"a": 1}"#], &[]),
    ("device", &["cpu"], &[]),
];

struct Case {
    id: String,
    long: String,
    /// Command-line arguments (after the program name) that set the flag.
    args: Vec<String>,
    /// The arguments every case shares (so the comparison isolates this flag).
    context: Vec<String>,
    /// The same setting as a YAML file.
    yaml: String,
}

fn defaults() -> Value {
    serde_json::to_value(ServeConfig::default()).expect("defaults serialize")
}

fn cases() -> Vec<Case> {
    let cmd = ServeConfig::cli_command();
    let defaults = defaults();
    let mut out = Vec::new();
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        let id = arg.get_id().as_str().to_string();
        // `--config` is walked by its own test: its value is a file.
        if matches!(id.as_str(), "help" | "version" | "config") {
            continue;
        }
        let (value, context): (Vec<String>, Vec<String>) =
            match SAMPLES.iter().find(|(i, _, _)| *i == id) {
                Some((_, v, c)) => (
                    v.iter().map(|s| s.to_string()).collect(),
                    c.iter().map(|s| s.to_string()).collect(),
                ),
                None => match defaults.get(&id) {
                    Some(Value::Bool(b)) => (vec![(!b).to_string()], Vec::new()),
                    other => panic!("--{long} (default {other:?}) needs a sample value in SAMPLES"),
                },
            };
        let mut args = context.clone();
        if (value.len() == 1 && defaults.get(&id).is_some_and(Value::is_boolean))
            || value == ["false"]
        {
            args.push(format!("--{long}={}", value[0]));
        } else {
            args.push(format!("--{long}"));
            args.extend(value.iter().cloned());
        }
        let yaml_value = if value.len() == 1 {
            Value::String(value[0].clone())
        } else {
            Value::from(value.clone())
        };
        let mut yaml = String::new();
        for pair in context.chunks(2) {
            yaml.push_str(&format!(
                "{}: {}\n",
                pair[0].trim_start_matches('-'),
                pair.get(1).map(String::as_str).unwrap_or("true")
            ));
        }
        yaml.push_str(&format!("{long}: {yaml_value}\n"));
        out.push(Case {
            id,
            long: long.to_string(),
            args,
            context,
            yaml,
        });
    }
    out
}

fn load(args: &[String]) -> Result<ServeConfig, ConfigError> {
    let argv = std::iter::once("vllmd".to_string())
        .chain(args.iter().cloned())
        .collect();
    ServeConfig::load(argv, &EnvSettings::default())
}

fn plan(cfg: &ServeConfig) -> String {
    let plan =
        ServePlan::new(cfg, &EnvSettings::default()).unwrap_or_else(|e| panic!("no plan: {e}"));
    format!("{plan:?}")
}

#[test]
fn every_flag_works_is_refused_or_is_reported_without_effect() {
    let cases = cases();
    let ids: BTreeSet<&str> = cases
        .iter()
        .map(|c| c.id.as_str())
        .chain(["config"])
        .collect();
    let table: BTreeSet<&str> = FATES.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids, table,
        "the fate table and the command must hold the same flags"
    );
    let (mut works, mut refused, mut no_effect) = (0, 0, 0);
    for case in &cases {
        let what = format!("--{} ({:?})", case.long, case.args);
        let cfg = load(&case.args).unwrap_or_else(|e| panic!("{what} should parse: {e}"));
        let base =
            load(&case.context).unwrap_or_else(|e| panic!("{what}: the context should parse: {e}"));
        match daemon::config::fate(&case.id) {
            Fate::Works => {
                works += 1;
                assert!(cfg.check_supported().is_ok(), "{what} is refused");
                assert!(
                    cfg.no_effect_flags().is_empty(),
                    "{what} reported without effect"
                );
                assert_ne!(
                    plan(&cfg),
                    plan(&base),
                    "{what} changes nothing the server does"
                );
                assert!(
                    validate_yaml(&case.yaml).is_empty(),
                    "{what}: {:?}",
                    validate_yaml(&case.yaml)
                );
            }
            Fate::Refused(allowed) => {
                refused += 1;
                match cfg.check_supported() {
                    Err(ConfigError::Unsupported { flags }) => {
                        assert_eq!(flags, [format!("--{}", case.long)], "{what}")
                    }
                    other => panic!("{what} should be refused, got {other:?}"),
                }
                let problems = validate_yaml(&case.yaml);
                assert_eq!(problems.len(), 1, "{what}: {problems:?}");
                assert_eq!(
                    problems[0].message,
                    format!("not supported yet: --{}", case.long),
                    "{what}"
                );
                assert_eq!(
                    problems[0].line,
                    Some(case.yaml.lines().count()),
                    "{what}: the problem names the key's line"
                );
                for ok in allowed {
                    let args = vec![format!("--{}", case.long), ok.to_string()];
                    assert!(
                        load(&args)
                            .map(|c| c.check_supported().is_ok())
                            .unwrap_or(false),
                        "--{} {ok} should be accepted",
                        case.long
                    );
                }
            }
            Fate::NoEffect(why) => {
                no_effect += 1;
                assert!(cfg.check_supported().is_ok(), "{what} is refused");
                assert_eq!(
                    cfg.no_effect_flags(),
                    [(format!("--{}", case.long), why)],
                    "{what}"
                );
                let warning = cfg.no_effect_warning().unwrap_or_default();
                assert!(
                    warning.contains(&format!("--{} ({why})", case.long)),
                    "{what}: {warning}"
                );
                assert_eq!(
                    plan(&cfg),
                    plan(&base),
                    "{what} is said to have no effect but changes the plan"
                );
                assert!(validate_yaml(&case.yaml).is_empty(), "{what}");
                let from_yaml = ServeConfig::from_yaml(&case.yaml, &EnvSettings::default())
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(
                    from_yaml.no_effect_warning(),
                    Some(warning),
                    "{what}: YAML and command line disagree"
                );
            }
        }
    }
    assert!(
        works > 50 && refused > 50 && no_effect > 10,
        "{works} work, {refused} refused, {no_effect} without effect"
    );
}

#[test]
fn the_config_file_flag_works() {
    let path = std::env::temp_dir().join(format!("vllmd-fate-{}.yaml", std::process::id()));
    std::fs::write(&path, "port: 9123\nenforce-eager: true\n").expect("write the YAML file");
    let cfg = load(&["--config".to_string(), path.display().to_string()]);
    let _ = std::fs::remove_file(&path);
    let cfg = cfg.unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(plan(&cfg), plan(&ServeConfig::default()));
    assert_eq!(
        cfg.no_effect_flags().len(),
        1,
        "flags set in the file are the user's too"
    );
}

#[test]
fn defaults_alone_warn_about_nothing_and_one_line_names_every_flag_without_effect() {
    let cfg = load(&[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.no_effect_warning(), None);
    let args: Vec<String> = [
        "-O3",
        "--enforce-eager",
        "--trust-remote-code",
        "--swap-space",
        "2",
        "--port",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let cfg = load(&args).unwrap_or_else(|e| panic!("{e}"));
    let warning = cfg.no_effect_warning().unwrap_or_default();
    assert_eq!(warning.lines().count(), 1);
    for flag in [
        "--compilation-config",
        "--enforce-eager",
        "--trust-remote-code",
        "--swap-space",
    ] {
        assert!(warning.contains(flag), "{flag} missing from {warning}");
    }
    assert!(!warning.contains("--port"));
}

#[test]
fn help_shows_each_fate() {
    let help = ServeConfig::cli_command().render_help().to_string();
    assert!(help.contains("[vllm-rs: not supported yet]"), "{help}");
    assert!(help.contains("[vllm-rs: only recompute]"), "{help}");
    assert!(
        help.contains("[vllm-rs: no effect: vllm-rs never captures CUDA graphs"),
        "{help}"
    );
}
