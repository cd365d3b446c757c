//! Flags of optional features and of the scheduler ("MultiModalConfig", "LoRAConfig",
//! "ObservabilityConfig", "SchedulerConfig", "VllmConfig").

use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::parse;
use crate::config::size::parse_human_len;

#[derive(Debug, Clone, Args, Serialize, Deserialize)]
#[command(next_help_heading = "MultiModalConfig")]
pub struct MultiModalArgs {
    /// Most input items per prompt for each modality, e.g. {"image": 16, "video": 2}; JSON or dotted keys.
    #[arg(long, default_value = "{}", value_parser = parse::json_object)]
    pub limit_mm_per_prompt: Value,

    /// Arguments for reading media, per modality, e.g. {"video": {"num_frames": 40}}; JSON or dotted keys.
    #[arg(long, default_value = "{}", value_parser = parse::json_object)]
    pub media_io_kwargs: Value,

    /// Overrides for the multimodal processor, e.g. {"num_crops": 4}; JSON or dotted keys.
    #[arg(long, value_parser = parse::json_object)]
    pub mm_processor_kwargs: Option<Value>,

    /// Size of the multimodal processor cache in GiB, per process (0 turns it off).
    #[arg(long, default_value_t = 4.0, value_parser = parse::non_negative_f64)]
    pub mm_processor_cache_gb: f64,

    /// Deprecated: turn off the multimodal preprocessor cache.
    #[arg(long)]
    pub disable_mm_preprocessor_cache: bool,

    /// Allow text and media parts fully interleaved in prompts.
    #[arg(long)]
    pub interleave_mm_strings: bool,

    /// Measure memory with the language model only, not the multimodal encoder.
    #[arg(long)]
    pub skip_mm_profiling: bool,
}

#[derive(Debug, Clone, Args, Serialize, Deserialize)]
#[command(next_help_heading = "LoRAConfig")]
pub struct LoraArgs {
    /// Serve LoRA adapters.
    #[arg(long)]
    pub enable_lora: bool,

    /// Allow biases in LoRA adapters.
    #[arg(long)]
    pub enable_lora_bias: bool,

    /// Most LoRA adapters in one batch.
    #[arg(long, default_value_t = 1, value_parser = parse::positive_usize)]
    pub max_loras: usize,

    /// Highest LoRA rank.
    #[arg(long, default_value_t = 16, value_parser = parse::positive_usize)]
    pub max_lora_rank: usize,

    /// Most extra vocabulary entries a LoRA adapter may add.
    #[arg(long, default_value_t = 256)]
    pub lora_extra_vocab_size: usize,

    /// Data type of LoRA weights ("auto": the model's).
    #[arg(long, default_value = "auto", value_parser = ["auto", "bfloat16", "float16"])]
    pub lora_dtype: String,

    /// Most LoRA adapters kept in CPU memory; at least --max-loras.
    #[arg(long)]
    pub max_cpu_loras: Option<usize>,

    /// Shard all of the LoRA computation across tensor-parallel ranks.
    #[arg(long)]
    pub fully_sharded_loras: bool,

    /// LoRA adapter to apply for each modality of multimodal models; JSON or dotted keys.
    #[arg(long, value_parser = parse::json_object)]
    pub default_mm_loras: Option<Value>,
}

#[derive(Debug, Clone, Args, Serialize, Deserialize)]
#[command(next_help_heading = "ObservabilityConfig")]
pub struct ObservabilityArgs {
    /// Show metrics hidden since this version (e.g. 0.9) while they are being retired.
    #[arg(long, value_name = "VERSION")]
    pub show_hidden_metrics_for_version: Option<String>,

    /// URL to which OpenTelemetry traces are sent.
    #[arg(long, value_name = "URL")]
    pub otlp_traces_endpoint: Option<String>,

    /// Detailed (costly) traces for these modules: comma-separated all, model, worker.
    #[arg(long, value_parser = parse::detailed_traces)]
    pub collect_detailed_traces: Option<String>,
}

#[derive(Debug, Clone, Args, Serialize, Deserialize)]
#[command(next_help_heading = "SchedulerConfig")]
pub struct SchedulerArgs {
    /// Most tokens processed in one engine step (default: chosen at start-up). Accepts 8k, 2K, ...
    #[arg(long, value_parser = parse_human_len, value_name = "TOKENS")]
    pub max_num_batched_tokens: Option<usize>,

    /// Most sequences processed in one engine step (default: chosen at start-up).
    #[arg(long, value_parser = parse::positive_usize)]
    pub max_num_seqs: Option<usize>,

    /// With chunked prefill, most sequences partially prefilled at once.
    #[arg(long, default_value_t = 1, value_parser = parse::positive_usize)]
    pub max_num_partial_prefills: usize,

    /// With chunked prefill, most long prompts (see --long-prefill-token-threshold) prefilled at once.
    ///
    /// Below --max-num-partial-prefills this lets short prompts overtake long ones.
    #[arg(long, default_value_t = 1, value_parser = parse::positive_usize)]
    pub max_long_partial_prefills: usize,

    /// CUDA graph capture sizes: one value N for 1, 2, 4 and multiples of 8 up to N, or the full list.
    #[arg(long, num_args = 1..)]
    pub cuda_graph_sizes: Vec<usize>,

    /// With chunked prefill, prompts longer than this many tokens count as long (0: automatic).
    #[arg(long, default_value_t = 0)]
    pub long_prefill_token_threshold: usize,

    /// Extra KV slots per sequence and step, for speculative decoding.
    #[arg(long, default_value_t = 0)]
    pub num_lookahead_slots: usize,

    /// Wait this multiple of the previous prompt's latency before scheduling the next prompt.
    #[arg(long, default_value_t = 0.0, value_parser = parse::non_negative_f64)]
    pub scheduler_delay_factor: f64,

    /// How preempted sequences are handled (default: recompute, swap where recompute cannot work).
    #[arg(long, value_parser = ["recompute", "swap"])]
    pub preemption_mode: Option<String>,

    /// Order of service: "fcfs" by arrival, "priority" by request priority (lower first), then arrival.
    #[arg(long, default_value = "fcfs", value_parser = ["fcfs", "priority"])]
    pub scheduling_policy: String,

    /// Split prefills into chunks that fit the remaining token budget of a step.
    #[arg(long)]
    pub enable_chunked_prefill: Option<bool>,

    /// With chunked prefill, never split one multimodal item across steps.
    #[arg(long)]
    pub disable_chunked_mm_input: bool,

    /// Scheduler class.
    #[arg(long, default_value = "vllm.core.scheduler.Scheduler")]
    pub scheduler_cls: String,

    /// Give every attention layer the same KV-cache size, even with mixed attention types.
    #[arg(long)]
    pub disable_hybrid_kv_cache_manager: bool,

    /// Schedule the next step while the current one runs (experimental).
    #[arg(long)]
    pub async_scheduling: bool,
}

#[derive(Debug, Clone, Args, Serialize, Deserialize)]
#[command(next_help_heading = "VllmConfig")]
pub struct VllmArgs {
    /// Speculative decoding settings; JSON or dotted keys.
    #[arg(long, value_parser = parse::json_object)]
    pub speculative_config: Option<Value>,

    /// Settings for distributed KV-cache transfer; JSON or dotted keys.
    #[arg(long, value_parser = parse::json_object)]
    pub kv_transfer_config: Option<Value>,

    /// Settings for publishing KV-cache events; JSON or dotted keys.
    #[arg(long, value_parser = parse::json_object)]
    pub kv_events_config: Option<Value>,

    /// Compilation and CUDA graph settings; -O3 is short for {"level": 3}. JSON or dotted keys.
    ///
    /// Level 0 compiles nothing; 1 and 2 are for testing; 3 is the production level. A full
    /// config looks like {"level": 3, "cudagraph_capture_sizes": [1, 2, 4, 8]}.
    #[arg(long, short = 'O', default_value = "{}", value_parser = parse::compilation_config)]
    pub compilation_config: Value,

    /// Platform-specific settings; JSON or dotted keys.
    #[arg(long, default_value = "{}", value_parser = parse::json_object)]
    pub additional_config: Value,
}
