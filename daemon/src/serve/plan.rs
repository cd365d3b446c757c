//! What a [`ServeConfig`] asks of the server, worked out before anything is loaded: the load
//! options, the engine settings, the HTTP front end. Every flag that works is read here (or by
//! the configuration loader itself), so a test can check that each one changes the plan and
//! that each flag without effect changes nothing.

use chat_parsers::{ReasoningParserKind, ToolParserKind};
use engine::structured::GrammarOptions;
use std::path::PathBuf;
use std::time::Duration;

use engine::kv_cache::PrefixHashAlgo;
use engine::llm_engine::EngineConfig;
use engine::loader::LoadOptions;
use engine::sampling::LogprobsMode;
use engine::scheduler::SchedulingPolicy;
use serde_json::Value;

use super::listener::HttpLimits;
use super::names::HubPlan;
use super::tls::TlsSettings;
use super::ServeError;
use crate::config::{EnvSettings, ServeConfig, Source};
use crate::server::{ApiOptions, CorsSettings};

/// vLLM's KV-cache block size when `--block-size` is unset.
pub const DEFAULT_BLOCK_SIZE: usize = 16;
/// vLLM's `--max-num-seqs` default.
pub const DEFAULT_MAX_NUM_SEQS: usize = 256;
/// vLLM's token budget per step with chunked prefill.
pub const DEFAULT_MAX_NUM_BATCHED_TOKENS: usize = 2048;
/// Largest request body accepted (bytes).
const MAX_BODY_BYTES: usize = 4 << 20;

/// The server's settings, from the flags and the environment.
#[derive(Debug, Clone)]
pub struct ServePlan {
    pub(crate) load: LoadOptions,
    /// How `--model`, `--tokenizer` and `--hf-config-path` are fetched when they are repo ids.
    pub(crate) hub: HubPlan,
    /// `--use-tqdm-on-load`: show weight-loading progress.
    pub(crate) progress_bar: bool,
    /// `--chat-template` as given (a file or the template).
    pub(crate) chat_template: Option<String>,
    pub(crate) generation_config: String,
    pub(crate) override_generation_config: Option<Value>,
    /// The engine settings; [`ServePlan::engine_config`] completes them once the context length is known.
    pub(crate) engine: EngineConfig,
    pub(crate) max_num_batched_tokens: Option<usize>,
    pub(crate) served_model_names: Vec<String>,
    pub(crate) api: ApiOptions,
    pub(crate) cors: CorsSettings,
    pub(crate) tls: TlsSettings,
    pub(crate) limits: HttpLimits,
    pub(crate) host: Option<String>,
    pub(crate) port: u16,
    pub(crate) uds: Option<PathBuf>,
    /// Log the engine statistics every 10 s (`--disable-log-stats` turns it off).
    pub(crate) log_stats: bool,
    /// The `tracing` directive of the HTTP layer's loggers (`--uvicorn-log-level`).
    pub http_log_directive: String,
    /// `--show-hidden-metrics-for-version`: also render the metrics hidden since that version.
    pub(crate) show_hidden_metrics: bool,
    /// `--runner`, `--convert`, `--task` and `--override-pooler-config`, resolved once the
    /// model is loaded (whether it is a classifier decides `auto`).
    pub(crate) runner: RunnerFlags,
}

/// The flags that choose the generate or the pooling runner.
#[derive(Debug, Clone)]
pub(crate) struct RunnerFlags {
    pub(crate) runner: String,
    pub(crate) convert: String,
    pub(crate) task: Option<String>,
    pub(crate) override_pooler_config: Option<Value>,
}

fn parse<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, ServeError>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e| ServeError::Config(format!("--{flag}: {e}")))
}

/// Whether requests are logged: `--enable-log-requests`, or the deprecated
/// `--no-disable-log-requests` (vLLM's default `--disable-log-requests` leaves logging off).
pub fn log_requests(cfg: &ServeConfig) -> bool {
    cfg.enable_log_requests || !cfg.disable_log_requests
}

/// The `tracing` filter directive for the HTTP layer (targets `uvicorn.access`, `uvicorn.error`)
/// at uvicorn's `--uvicorn-log-level`, which is independent of `VLLM_LOGGING_LEVEL` as in vLLM.
pub fn http_log_directive(uvicorn_log_level: &str) -> String {
    let level = match uvicorn_log_level {
        "critical" | "error" => "error",
        "warning" => "warn",
        "debug" => "debug",
        "trace" => "trace",
        _ => "info",
    };
    format!("uvicorn={level}")
}

/// `--root-path` as a prefix to strip: `/x` (no trailing slash); empty and `/` mean none.
fn root_path(given: Option<&str>) -> Result<Option<String>, ServeError> {
    let Some(p) = given
        .map(|p| p.trim_end_matches('/'))
        .filter(|p| !p.is_empty())
    else {
        return Ok(None);
    };
    if !p.starts_with('/') {
        return Err(ServeError::Config(format!(
            "--root-path {p}: must start with `/`"
        )));
    }
    Ok(Some(p.to_string()))
}

/// The deprecated flags the user set, each with what replaces it (silenced by
/// `VLLM_NO_DEPRECATION_WARNING`). Deprecated flags without effect are named in the no-effect line.
pub fn deprecation_warnings(cfg: &ServeConfig, env: &EnvSettings) -> Vec<String> {
    if env.no_deprecation_warning {
        return Vec::new();
    }
    [
        ("disable_log_requests", "--disable-log-requests is deprecated: use --enable-log-requests / --no-enable-log-requests"),
        ("task", "--task is deprecated: use --runner and --convert"),
    ]
    .iter()
    .filter(|(id, _)| cfg.source_of(id) != Source::Default)
    .map(|(_, msg)| msg.to_string())
    .collect()
}

/// `--hf-overrides`, with `--rope-scaling` and `--rope-theta` folded in as vLLM does.
pub fn hf_overrides(cfg: &ServeConfig) -> serde_json::Map<String, Value> {
    let mc = &cfg.model_config;
    let mut o = mc.hf_overrides.as_object().cloned().unwrap_or_default();
    if mc.rope_scaling.as_object().is_some_and(|r| !r.is_empty()) {
        o.insert("rope_scaling".into(), mc.rope_scaling.clone());
    }
    if let Some(theta) = mc.rope_theta {
        o.insert("rope_theta".into(), theta.into());
    }
    o
}

impl ServePlan {
    pub fn new(cfg: &ServeConfig, env: &EnvSettings) -> Result<ServePlan, ServeError> {
        let mc = &cfg.model_config;
        let model = match mc.model.clone().or_else(|| cfg.model_tag.clone()) {
            Some(p) => p,
            None => engine::paths::default_model_path(),
        };
        let load = LoadOptions {
            model,
            load_format: parse("load-format", &cfg.load.load_format)?,
            dtype: parse("dtype", &mc.dtype)?,
            tokenizer: mc.tokenizer.clone(),
            hf_config_path: mc.hf_config_path.clone(),
            max_model_len: mc.max_model_len,
            allow_long_max_model_len: env.allow_long_max_model_len,
            seed: mc.seed.unwrap_or(0),
            device: parse("device", &cfg.device)?,
            hf_overrides: hf_overrides(cfg),
            disable_sliding_window: mc.disable_sliding_window,
        };
        let mut ec = EngineConfig::new(0);
        ec.block_size = cfg.cache.block_size.unwrap_or(DEFAULT_BLOCK_SIZE);
        ec.num_blocks_override = cfg.cache.num_gpu_blocks_override;
        ec.kv_cache_bytes = (env.cpu_kvcache_space_gib as usize) << 30;
        ec.gpu_memory_utilization = cfg.cache.gpu_memory_utilization;
        ec.enable_prefix_caching = cfg.cache.enable_prefix_caching.unwrap_or(true);
        ec.prefix_caching_hash_algo = parse::<PrefixHashAlgo>(
            "prefix-caching-hash-algo",
            &cfg.cache.prefix_caching_hash_algo,
        )?;
        ec.max_logprobs = mc.max_logprobs;
        ec.logprobs_mode = parse::<LogprobsMode>("logprobs-mode", &mc.logprobs_mode)?;
        ec.seed = mc.seed.unwrap_or(0);
        ec.iteration_timeout = Duration::from_secs(env.engine_iteration_timeout_s);
        let s = &mut ec.scheduler;
        s.enable_chunked_prefill = cfg.scheduler.enable_chunked_prefill.unwrap_or(true);
        s.max_num_seqs = cfg.scheduler.max_num_seqs.unwrap_or(DEFAULT_MAX_NUM_SEQS);
        s.max_num_partial_prefills = cfg.scheduler.max_num_partial_prefills;
        s.max_long_partial_prefills = cfg.scheduler.max_long_partial_prefills;
        s.long_prefill_token_threshold = cfg.scheduler.long_prefill_token_threshold;
        s.policy =
            parse::<SchedulingPolicy>("scheduling-policy", &cfg.scheduler.scheduling_policy)?;
        let f = &cfg.frontend;
        let d = &cfg.decoding;
        let tool_call_parser = match f.tool_call_parser.as_deref() {
            None => None,
            Some(name) => Some(ToolParserKind::from_name(name).ok_or_else(|| {
                ServeError::Config(format!(
                    "--tool-call-parser: `{name}` is not one of {}",
                    ToolParserKind::NAMES.join(", ")
                ))
            })?),
        };
        if f.enable_auto_tool_choice && tool_call_parser.is_none() {
            return Err(ServeError::Config(
                "--enable-auto-tool-choice requires --tool-call-parser".into(),
            ));
        }
        let reasoning_parser = match d.reasoning_parser.as_str() {
            "" => None,
            name => Some(ReasoningParserKind::from_name(name).ok_or_else(|| {
                ServeError::Config(format!(
                    "--reasoning-parser: `{name}` is not one of {}",
                    ReasoningParserKind::NAMES.join(", ")
                ))
            })?),
        };
        let api = ApiOptions {
            api_keys: f.api_key.clone(),
            response_role: f.response_role.clone(),
            enable_prompt_tokens_details: f.enable_prompt_tokens_details,
            enable_force_include_usage: f.enable_force_include_usage,
            return_tokens_as_token_ids: f.return_tokens_as_token_ids,
            enable_request_id_headers: f.enable_request_id_headers,
            disable_fastapi_docs: f.disable_fastapi_docs,
            enable_server_load_tracking: f.enable_server_load_tracking,
            enable_tokenizer_info_endpoint: f.enable_tokenizer_info_endpoint,
            enable_log_requests: log_requests(cfg),
            enable_log_outputs: f.enable_log_outputs,
            max_log_len: f.max_log_len,
            max_body_bytes: MAX_BODY_BYTES,
            chat_template_content_format: f.chat_template_content_format.clone(),
            dev_mode: env.server_dev_mode,
            access_log: !f.disable_uvicorn_access_log,
            root_path: root_path(f.root_path.as_deref())?,
            exclude_tools_when_tool_choice_none: f.exclude_tools_when_tool_choice_none,
            grammar: GrammarOptions {
                any_whitespace: !d.guided_decoding_disable_any_whitespace,
                additional_properties: !d.guided_decoding_disable_additional_properties,
                fallback: !d.guided_decoding_disable_fallback,
                whitespace_pattern: None,
            },
            enable_auto_tool_choice: f.enable_auto_tool_choice,
            tool_call_parser,
            reasoning_parser,
        };
        let overrides = &mc.override_generation_config;
        Ok(ServePlan {
            runner: RunnerFlags {
                runner: mc.runner.clone(),
                convert: mc.convert.clone(),
                task: mc.task.clone(),
                override_pooler_config: mc.override_pooler_config.clone(),
            },
            load,
            hub: HubPlan {
                revision: mc.revision.clone(),
                tokenizer_revision: mc.tokenizer_revision.clone(),
                hf_token: mc.hf_token.clone(),
                download_dir: cfg.load.download_dir.clone(),
                ignore_patterns: cfg.load.ignore_patterns.clone(),
            },
            progress_bar: cfg.load.use_tqdm_on_load,
            chat_template: f.chat_template.clone(),
            generation_config: mc.generation_config.clone(),
            override_generation_config: overrides
                .as_object()
                .filter(|o| !o.is_empty())
                .map(|_| overrides.clone()),
            engine: ec,
            max_num_batched_tokens: cfg.scheduler.max_num_batched_tokens,
            served_model_names: mc.served_model_name.clone(),
            api,
            cors: CorsSettings {
                allowed_origins: f.allowed_origins.clone(),
                allowed_methods: f.allowed_methods.clone(),
                allowed_headers: f.allowed_headers.clone(),
                allow_credentials: f.allow_credentials,
            },
            tls: TlsSettings {
                keyfile: f.ssl_keyfile.clone(),
                certfile: f.ssl_certfile.clone(),
                ca_certs: f.ssl_ca_certs.clone(),
                cert_reqs: f.ssl_cert_reqs,
            },
            limits: HttpLimits {
                max_header_count: f.h11_max_header_count,
                max_incomplete_event_size: f.h11_max_incomplete_event_size,
                keep_alive: Duration::from_secs(env.http_timeout_keep_alive_s),
            },
            host: f.host.clone(),
            port: f.port,
            uds: f.uds.clone(),
            log_stats: !cfg.disable_log_stats,
            http_log_directive: http_log_directive(&f.uvicorn_log_level),
            show_hidden_metrics: cfg.observability.show_hidden_metrics_for_version.is_some(),
        })
    }

    /// The HTTP API's options, as the server hands them to its handlers (also used by the
    /// request fuzz targets to build the same router).
    pub fn api_options(&self) -> &ApiOptions {
        &self.api
    }

    /// The engine settings for a model whose context length is `max_model_len`: vLLM's token
    /// budget is 2048 with chunked prefill, else room for a whole prompt.
    pub fn engine_config(&self, max_model_len: usize) -> EngineConfig {
        let mut ec = self.engine.clone();
        let s = &mut ec.scheduler;
        s.max_model_len = max_model_len;
        s.max_num_batched_tokens =
            self.max_num_batched_tokens
                .unwrap_or(if s.enable_chunked_prefill {
                    DEFAULT_MAX_NUM_BATCHED_TOKENS
                } else {
                    max_model_len.max(DEFAULT_MAX_NUM_BATCHED_TOKENS)
                });
        ec
    }
}
