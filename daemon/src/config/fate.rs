//! The fate of every `vllm serve` flag in vllm-rs, decided in one table ([`FATES`]):
//!
//! - [`Fate::Works`]: the flag does what the reference says.
//! - [`Fate::Refused`]: a value vllm-rs cannot honour is refused at start-up with
//!   `not supported yet: --flag` (exit code 2; `vllm config validate` exits 1).
//! - [`Fate::NoEffect`]: the flag truly changes nothing on this backend (CUDA graphs and
//!   torch.compile, multiprocessing tuning, deprecated switches). It is accepted so vLLM command
//!   lines keep working; start-up logs one warning line naming each such flag the user set and
//!   why, and `vllm config validate` prints the same line.
//!
//! `vllmd --help` shows the fate of each flag that does not simply work.

use serde_json::Value;

use crate::config::args::{flags, ServeConfig, Source};
use crate::config::error::ConfigError;

/// What vllm-rs does with a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// The flag does what the reference says.
    Works,
    /// Refused unless left unset or set to one of these values; an empty list refuses any value
    /// other than the default.
    Refused(&'static [&'static str]),
    /// Accepted without effect here, for the reason given.
    NoEffect(&'static str),
}

use Fate::{NoEffect, Refused, Works};

/// Refused at any value other than the default.
const NO: Fate = Refused(&[]);
const CUDA_GRAPHS: Fate = NoEffect(
    "vllm-rs never captures CUDA graphs nor compiles with torch.compile: it always runs eagerly",
);
const NO_MULTIMODAL: Fate = NoEffect("vllm-rs takes no multimodal input");

/// Every long flag of `vllmd`, keyed by flag id (the YAML key), in `--help` order. A test checks
/// that this table and the command hold exactly the same flags.
pub const FATES: &[(&str, Fate)] = &[
    ("config", Works),
    ("headless", NO),
    ("api_server_count", NO),
    ("disable_log_stats", Works),
    (
        "enable_prompt_adapter",
        NoEffect("deprecated: prompt adapters were removed (as in vLLM)"),
    ),
    ("enable_log_requests", Works),
    ("disable_log_requests", Works),
    // Frontend
    ("host", Works),
    ("port", Works),
    ("uds", Works),
    ("uvicorn_log_level", Works),
    ("disable_uvicorn_access_log", Works),
    ("allow_credentials", Works),
    ("allowed_origins", Works),
    ("allowed_methods", Works),
    ("allowed_headers", Works),
    ("api_key", Works),
    ("lora_modules", NO),
    ("chat_template", Works),
    ("chat_template_content_format", Works),
    ("response_role", Works),
    ("ssl_keyfile", Works),
    ("ssl_certfile", Works),
    ("ssl_ca_certs", Works),
    ("enable_ssl_refresh", NO),
    ("ssl_cert_reqs", Works),
    ("root_path", Works),
    ("middleware", NO),
    ("return_tokens_as_token_ids", Works),
    (
        "disable_frontend_multiprocessing",
        NoEffect("the HTTP front end always runs in the engine's process"),
    ),
    ("enable_request_id_headers", Works),
    ("enable_auto_tool_choice", Works),
    ("exclude_tools_when_tool_choice_none", Works),
    (
        "tool_call_parser",
        Refused(&[
            "hermes",
            "llama3_json",
            "llama4_json",
            "mistral",
            "pythonic",
            "qwen3_xml",
            "qwen3_coder",
        ]),
    ),
    ("tool_parser_plugin", NO),
    ("tool_server", NO),
    ("log_config_file", NO),
    ("max_log_len", Works),
    ("disable_fastapi_docs", Works),
    ("enable_prompt_tokens_details", Works),
    ("enable_server_load_tracking", Works),
    ("enable_force_include_usage", Works),
    ("enable_tokenizer_info_endpoint", Works),
    ("enable_log_outputs", Works),
    ("h11_max_incomplete_event_size", Works),
    ("h11_max_header_count", Works),
    // ModelConfig
    ("model", Works),
    ("runner", Refused(&["auto", "generate", "pooling"])),
    ("convert", Refused(&["auto", "none", "embed", "classify"])),
    (
        "task",
        Refused(&[
            "auto",
            "generate",
            "embed",
            "embedding",
            "classify",
            "score",
        ]),
    ),
    ("tokenizer", Works),
    ("tokenizer_mode", Refused(&["auto", "slow"])),
    (
        "trust_remote_code",
        NoEffect("vllm-rs never runs code shipped with a model"),
    ),
    ("dtype", Works),
    ("seed", Works),
    ("hf_config_path", Works),
    ("allowed_local_media_path", NO),
    ("revision", Works),
    ("code_revision", NO),
    ("rope_scaling", Works),
    ("rope_theta", Works),
    ("tokenizer_revision", Works),
    ("max_model_len", Works),
    ("quantization", Refused(&["none", "gguf"])),
    ("enforce_eager", CUDA_GRAPHS),
    ("max_seq_len_to_capture", CUDA_GRAPHS),
    ("max_logprobs", Works),
    ("logprobs_mode", Works),
    ("disable_sliding_window", Works),
    (
        "disable_cascade_attn",
        NoEffect("vllm-rs has no cascade attention"),
    ),
    ("skip_tokenizer_init", NO),
    ("enable_prompt_embeds", NO),
    ("served_model_name", Works),
    (
        "disable_async_output_proc",
        NoEffect("deprecated: output processing is not asynchronous in vllm-rs"),
    ),
    ("config_format", Refused(&["auto", "hf"])),
    ("hf_token", Works),
    ("hf_overrides", Works),
    ("override_neuron_config", NO),
    ("override_pooler_config", Works),
    ("logits_processor_pattern", NO),
    ("generation_config", Works),
    ("override_generation_config", Works),
    ("enable_sleep_mode", NO),
    ("model_impl", Refused(&["auto", "vllm"])),
    ("override_attention_dtype", NO),
    ("logits_processors", NO),
    // LoadConfig
    (
        "load_format",
        Refused(&["auto", "safetensors", "gguf", "dummy"]),
    ),
    ("download_dir", Works),
    ("model_loader_extra_config", NO),
    ("ignore_patterns", Works),
    ("use_tqdm_on_load", Works),
    ("pt_load_map_location", Refused(&["cpu"])),
    // DecodingConfig: structured outputs by llguidance (vLLM's `guidance` backend).
    ("guided_decoding_backend", Refused(&["auto", "guidance"])),
    ("guided_decoding_disable_fallback", Works),
    ("guided_decoding_disable_any_whitespace", Works),
    ("guided_decoding_disable_additional_properties", Works),
    ("reasoning_parser", Refused(&["", "deepseek_r1", "qwen3"])),
    // ParallelConfig: one device, one process.
    ("distributed_executor_backend", Refused(&["mp", "uni"])),
    ("pipeline_parallel_size", NO),
    ("tensor_parallel_size", NO),
    ("data_parallel_size", NO),
    ("data_parallel_rank", NO),
    ("data_parallel_start_rank", NO),
    ("data_parallel_size_local", NO),
    ("data_parallel_address", NO),
    ("data_parallel_rpc_port", NO),
    ("data_parallel_backend", NO),
    ("data_parallel_hybrid_lb", NO),
    ("enable_expert_parallel", NO),
    ("enable_eplb", NO),
    ("num_redundant_experts", NO),
    (
        "eplb_window_size",
        NoEffect("tunes expert load balancing, which is off (--enable-eplb is not supported)"),
    ),
    (
        "eplb_step_interval",
        NoEffect("tunes expert load balancing, which is off (--enable-eplb is not supported)"),
    ),
    (
        "eplb_log_balancedness",
        NoEffect("tunes expert load balancing, which is off (--enable-eplb is not supported)"),
    ),
    (
        "max_parallel_loading_workers",
        NoEffect("one process loads the weights"),
    ),
    ("ray_workers_use_nsight", NO),
    (
        "disable_custom_all_reduce",
        NoEffect("one device: there is no all-reduce"),
    ),
    ("worker_cls", NO),
    ("worker_extension_cls", NO),
    ("enable_multimodal_encoder_data_parallel", NO),
    // CacheConfig
    ("block_size", Works),
    ("gpu_memory_utilization", Works),
    (
        "swap_space",
        NoEffect("nothing is swapped: preempted requests are recomputed"),
    ),
    ("kv_cache_dtype", NO),
    ("num_gpu_blocks_override", Works),
    ("enable_prefix_caching", Works),
    ("prefix_caching_hash_algo", Works),
    ("cpu_offload_gb", NO),
    ("calculate_kv_scales", NO),
    ("kv_sharing_fast_prefill", NO),
    ("mamba_cache_dtype", NO),
    ("mamba_ssm_cache_dtype", NO),
    // MultiModalConfig
    ("limit_mm_per_prompt", NO),
    ("media_io_kwargs", NO),
    ("mm_processor_kwargs", NO),
    ("mm_processor_cache_gb", NO),
    ("disable_mm_preprocessor_cache", NO_MULTIMODAL),
    ("interleave_mm_strings", NO),
    ("skip_mm_profiling", NO),
    // LoRAConfig
    ("enable_lora", NO),
    ("enable_lora_bias", NO),
    ("max_loras", NO),
    ("max_lora_rank", NO),
    ("lora_extra_vocab_size", NO),
    ("lora_dtype", NO),
    ("max_cpu_loras", NO),
    ("fully_sharded_loras", NO),
    ("default_mm_loras", NO),
    // ObservabilityConfig
    ("show_hidden_metrics_for_version", Works),
    ("otlp_traces_endpoint", NO),
    ("collect_detailed_traces", NO),
    // SchedulerConfig
    ("max_num_batched_tokens", Works),
    ("max_num_seqs", Works),
    ("max_num_partial_prefills", Works),
    ("max_long_partial_prefills", Works),
    ("cuda_graph_sizes", CUDA_GRAPHS),
    ("long_prefill_token_threshold", Works),
    ("num_lookahead_slots", NO),
    ("scheduler_delay_factor", NO),
    ("preemption_mode", Refused(&["recompute"])),
    ("scheduling_policy", Works),
    ("enable_chunked_prefill", Works),
    ("disable_chunked_mm_input", NO_MULTIMODAL),
    ("scheduler_cls", NO),
    (
        "disable_hybrid_kv_cache_manager",
        NoEffect("every layer has the same KV-cache layout in vllm-rs"),
    ),
    ("async_scheduling", NO),
    // VllmConfig
    ("speculative_config", NO),
    ("kv_transfer_config", NO),
    ("kv_events_config", NO),
    ("compilation_config", CUDA_GRAPHS),
    ("additional_config", NO),
    // vllm-rs's own
    ("device", Works),
];

/// The fate of the flag with this id; flags missing from the table (a test forbids that) work.
pub fn fate(id: &str) -> Fate {
    FATES
        .iter()
        .find(|(f, _)| *f == id)
        .map(|(_, fate)| *fate)
        .unwrap_or(Works)
}

/// The `--help` text of a flag with its fate appended (for flags that do not simply work).
pub(crate) fn help_suffix(id: &str) -> Option<String> {
    match fate(id) {
        Works => None,
        Refused([]) => Some("[vllm-rs: not supported yet]".into()),
        // "" stands for "unset" in a value list; the help names only real values.
        Refused(ok) => Some(format!(
            "[vllm-rs: only {}]",
            ok.iter()
                .filter(|v| !v.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        )),
        NoEffect(why) => Some(format!("[vllm-rs: no effect: {why}]")),
    }
}

impl ServeConfig {
    /// Refuses flags for features vllm-rs does not have yet, one `not supported yet: --flag`
    /// line per offending flag (see [`ServeConfig::unsupported_flags`]).
    pub fn check_supported(&self) -> Result<(), ConfigError> {
        let flags = self.unsupported_flags();
        if flags.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Unsupported { flags })
        }
    }

    /// The `--flag` names set to values vllm-rs cannot honour yet, in `--help` order.
    pub fn unsupported_flags(&self) -> Vec<String> {
        let value = serde_json::to_value(self).unwrap_or(Value::Null);
        let default = serde_json::to_value(Self::default()).unwrap_or(Value::Null);
        let cmd = Self::cli_command();
        flags(&cmd)
            .into_iter()
            .filter(|f| {
                let v = value.get(&f.id).unwrap_or(&Value::Null);
                match fate(&f.id) {
                    Refused([]) => v != default.get(&f.id).unwrap_or(&Value::Null),
                    Refused(ok) => match v {
                        Value::Null => false,
                        Value::String(s) => !ok.contains(&s.as_str()),
                        _ => true,
                    },
                    Works | NoEffect(_) => false,
                }
            })
            .map(|f| format!("--{}", f.long))
            .collect()
    }

    /// The flags without effect here that the user set (command line or YAML), with the reason.
    pub fn no_effect_flags(&self) -> Vec<(String, &'static str)> {
        let cmd = Self::cli_command();
        flags(&cmd)
            .into_iter()
            .filter(|f| self.source_of(&f.id) != Source::Default)
            .filter_map(|f| match fate(&f.id) {
                NoEffect(why) => Some((format!("--{}", f.long), why)),
                Works | Refused(_) => None,
            })
            .collect()
    }

    /// The one warning line start-up logs (and `vllm config validate` prints) for the flags of
    /// [`ServeConfig::no_effect_flags`]; `None` when there are none.
    pub fn no_effect_warning(&self) -> Option<String> {
        let flags = self.no_effect_flags();
        if flags.is_empty() {
            return None;
        }
        let each: Vec<String> = flags
            .iter()
            .map(|(flag, why)| format!("{flag} ({why})"))
            .collect();
        Some(format!(
            "these flags have no effect in vllm-rs and are ignored: {}",
            each.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_holds_every_flag_once() {
        let cmd = ServeConfig::cli_command();
        let ids: Vec<String> = flags(&cmd).into_iter().map(|f| f.id).collect();
        for (id, _) in FATES {
            assert!(ids.iter().any(|i| i == id), "{id} is not a flag");
            assert_eq!(
                FATES.iter().filter(|(f, _)| f == id).count(),
                1,
                "{id} is listed twice"
            );
        }
        for id in &ids {
            assert!(
                FATES.iter().any(|(f, _)| f == id),
                "--{id} has no fate in FATES"
            );
        }
    }
}
