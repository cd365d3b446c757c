//! Flags that parse (so vLLM command lines and config files keep working) but name features
//! vllm-rs does not have yet. `check_supported` refuses them; a few more are accepted and have
//! no effect, and `ignored_flags` lists those so the server can warn.

use serde_json::Value;

use crate::config::args::{flags, ServeConfig};
use crate::config::error::ConfigError;

enum Rule {
    /// Any value other than the default.
    NotDefault,
    /// Values other than unset and these.
    AllowOnly(&'static [&'static str]),
}

use Rule::{AllowOnly, NotDefault};

/// Keyed by flag id. Multi-GPU, adapters, multimodal input, remote hubs and Python plug-ins are
/// the features behind most of them.
const UNSUPPORTED: &[(&str, Rule)] = &[
    ("headless", NotDefault),
    ("api_server_count", NotDefault),
    ("lora_modules", NotDefault),
    ("enable_ssl_refresh", NotDefault),
    ("middleware", NotDefault),
    ("enable_auto_tool_choice", NotDefault),
    ("tool_call_parser", NotDefault),
    ("tool_parser_plugin", NotDefault),
    ("tool_server", NotDefault),
    ("log_config_file", NotDefault),
    ("runner", AllowOnly(&["auto", "generate"])),
    ("convert", AllowOnly(&["auto", "none"])),
    ("task", AllowOnly(&["auto", "generate"])),
    ("tokenizer_mode", AllowOnly(&["auto", "slow"])),
    ("allowed_local_media_path", NotDefault),
    ("revision", NotDefault),
    ("code_revision", NotDefault),
    ("tokenizer_revision", NotDefault),
    ("quantization", AllowOnly(&["none", "gguf"])),
    ("skip_tokenizer_init", NotDefault),
    ("enable_prompt_embeds", NotDefault),
    ("config_format", AllowOnly(&["auto", "hf"])),
    ("hf_token", NotDefault),
    ("override_neuron_config", NotDefault),
    ("override_pooler_config", NotDefault),
    ("logits_processor_pattern", NotDefault),
    ("enable_sleep_mode", NotDefault),
    ("model_impl", AllowOnly(&["auto", "vllm"])),
    ("override_attention_dtype", NotDefault),
    ("logits_processors", NotDefault),
    (
        "load_format",
        AllowOnly(&["auto", "safetensors", "gguf", "dummy"]),
    ),
    ("download_dir", NotDefault),
    ("model_loader_extra_config", NotDefault),
    ("pt_load_map_location", AllowOnly(&["cpu"])),
    ("reasoning_parser", NotDefault),
    ("distributed_executor_backend", AllowOnly(&["mp", "uni"])),
    ("pipeline_parallel_size", NotDefault),
    ("tensor_parallel_size", NotDefault),
    ("data_parallel_size", NotDefault),
    ("data_parallel_rank", NotDefault),
    ("data_parallel_start_rank", NotDefault),
    ("data_parallel_size_local", NotDefault),
    ("data_parallel_address", NotDefault),
    ("data_parallel_rpc_port", NotDefault),
    ("data_parallel_backend", NotDefault),
    ("data_parallel_hybrid_lb", NotDefault),
    ("enable_expert_parallel", NotDefault),
    ("enable_eplb", NotDefault),
    ("num_redundant_experts", NotDefault),
    ("ray_workers_use_nsight", NotDefault),
    ("worker_cls", NotDefault),
    ("worker_extension_cls", NotDefault),
    ("enable_multimodal_encoder_data_parallel", NotDefault),
    ("kv_cache_dtype", NotDefault),
    ("cpu_offload_gb", NotDefault),
    ("calculate_kv_scales", NotDefault),
    ("kv_sharing_fast_prefill", NotDefault),
    ("mamba_cache_dtype", NotDefault),
    ("mamba_ssm_cache_dtype", NotDefault),
    ("limit_mm_per_prompt", NotDefault),
    ("media_io_kwargs", NotDefault),
    ("mm_processor_kwargs", NotDefault),
    ("mm_processor_cache_gb", NotDefault),
    ("interleave_mm_strings", NotDefault),
    ("skip_mm_profiling", NotDefault),
    ("enable_lora", NotDefault),
    ("enable_lora_bias", NotDefault),
    ("max_loras", NotDefault),
    ("max_lora_rank", NotDefault),
    ("lora_extra_vocab_size", NotDefault),
    ("lora_dtype", NotDefault),
    ("max_cpu_loras", NotDefault),
    ("fully_sharded_loras", NotDefault),
    ("default_mm_loras", NotDefault),
    ("otlp_traces_endpoint", NotDefault),
    ("collect_detailed_traces", NotDefault),
    ("num_lookahead_slots", NotDefault),
    ("scheduler_delay_factor", NotDefault),
    ("scheduler_cls", NotDefault),
    ("async_scheduling", NotDefault),
    ("speculative_config", NotDefault),
    ("kv_transfer_config", NotDefault),
    ("kv_events_config", NotDefault),
    ("additional_config", NotDefault),
];

/// Accepted and without effect in vllm-rs: CUDA-graph/torch.compile tuning, Python loader
/// details, deprecated switches, and settings of features that are off.
const IGNORED: &[&str] = &[
    "enable_prompt_adapter",
    "disable_log_requests",
    "disable_frontend_multiprocessing",
    "exclude_tools_when_tool_choice_none",
    "trust_remote_code",
    "max_seq_len_to_capture",
    "disable_cascade_attn",
    "disable_async_output_proc",
    "ignore_patterns",
    "use_tqdm_on_load",
    "max_parallel_loading_workers",
    "disable_custom_all_reduce",
    "eplb_window_size",
    "eplb_step_interval",
    "eplb_log_balancedness",
    "disable_mm_preprocessor_cache",
    "show_hidden_metrics_for_version",
    "cuda_graph_sizes",
    "disable_chunked_mm_input",
    "disable_hybrid_kv_cache_manager",
    "compilation_config",
];

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
        self.offending(
            |id, v, default| match UNSUPPORTED.iter().find(|(u, _)| *u == id) {
                Some((_, NotDefault)) => v != default,
                Some((_, AllowOnly(ok))) => match v {
                    Value::Null => false,
                    Value::String(s) => !ok.contains(&s.as_str()),
                    _ => true,
                },
                None => false,
            },
        )
    }

    /// The `--flag` names set away from their defaults that have no effect in vllm-rs.
    pub fn ignored_flags(&self) -> Vec<String> {
        self.offending(|id, v, default| IGNORED.contains(&id) && v != default)
    }

    fn offending(&self, bad: impl Fn(&str, &Value, &Value) -> bool) -> Vec<String> {
        let cmd = Self::cli_command();
        let value = serde_json::to_value(self).unwrap_or(Value::Null);
        let default = serde_json::to_value(Self::default()).unwrap_or(Value::Null);
        flags(&cmd)
            .into_iter()
            .filter(|f| {
                let v = value.get(&f.id).unwrap_or(&Value::Null);
                bad(&f.id, v, default.get(&f.id).unwrap_or(&Value::Null))
            })
            .map(|f| format!("--{}", f.long))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_id_is_a_flag() {
        let cmd = ServeConfig::cli_command();
        let ids: Vec<String> = flags(&cmd).into_iter().map(|f| f.id).collect();
        for (id, _) in UNSUPPORTED {
            assert!(ids.iter().any(|i| i == id), "{id} is not a flag");
        }
        for id in IGNORED {
            assert!(ids.iter().any(|i| i == id), "{id} is not a flag");
        }
    }
}
