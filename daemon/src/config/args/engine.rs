//! Flags of the engine: structured decoding, parallelism and the KV cache
//! ("DecodingConfig", "ParallelConfig", "CacheConfig").

use clap::Args;
use serde::{Deserialize, Serialize};

use crate::config::parse;

#[derive(Debug, Clone, Args, Serialize, Deserialize)]
#[command(next_help_heading = "DecodingConfig")]
pub struct DecodingArgs {
    /// Backend for structured outputs (JSON schema, regex, choice, grammar): vllm-rs ships
    /// llguidance, vLLM's "guidance"; "auto" means it too. The other names are refused.
    #[arg(long, default_value = "auto", value_parser = ["auto", "guidance", "outlines", "xgrammar"])]
    pub guided_decoding_backend: String,

    /// A JSON-schema keyword llguidance does not implement fails the request (400) instead of
    /// being ignored with a warning.
    #[arg(long)]
    pub guided_decoding_disable_fallback: bool,

    /// Constrained JSON is compact: no free whitespace between its tokens.
    #[arg(long)]
    pub guided_decoding_disable_any_whitespace: bool,

    /// Objects of a JSON schema accept only their listed properties unless the schema says
    /// otherwise (`additionalProperties: false` by default).
    #[arg(long)]
    pub guided_decoding_disable_additional_properties: bool,

    /// Parser that moves the model's `<think>...</think>` into `reasoning_content`: deepseek_r1 or
    /// qwen3 (vLLM's glm45, GptOss, granite, hunyuan_a13b, mistral and step3 are refused).
    #[arg(long, default_value = "", value_parser = parse::reasoning_parser)]
    pub reasoning_parser: String,
}

#[derive(Debug, Clone, Args, Serialize, Deserialize)]
#[command(next_help_heading = "ParallelConfig")]
pub struct ParallelArgs {
    /// Backend for distributed workers.
    #[arg(long, value_parser = ["external_launcher", "mp", "ray", "uni"])]
    pub distributed_executor_backend: Option<String>,

    /// Number of pipeline-parallel stages (short: -pp).
    #[arg(long, default_value_t = 1, value_parser = parse::positive_usize)]
    pub pipeline_parallel_size: usize,

    /// Number of tensor-parallel shards (short: -tp).
    #[arg(long, default_value_t = 1, value_parser = parse::positive_usize)]
    pub tensor_parallel_size: usize,

    /// Number of data-parallel replicas (short: -dp).
    #[arg(long, default_value_t = 1, value_parser = parse::positive_usize)]
    pub data_parallel_size: usize,

    /// Data-parallel rank of this instance; set for an external load balancer (short: -dpn).
    #[arg(long)]
    pub data_parallel_rank: Option<usize>,

    /// First data-parallel rank on a secondary node (short: -dpr).
    #[arg(long)]
    pub data_parallel_start_rank: Option<usize>,

    /// Data-parallel replicas on this node (short: -dpl).
    #[arg(long)]
    pub data_parallel_size_local: Option<usize>,

    /// Address of the data-parallel head node (short: -dpa).
    #[arg(long)]
    pub data_parallel_address: Option<String>,

    /// Port for data-parallel RPC (short: -dpp).
    #[arg(long)]
    pub data_parallel_rpc_port: Option<u16>,

    /// Backend for data parallelism (short: -dpb).
    #[arg(long, default_value = "mp", value_parser = ["mp", "ray"])]
    pub data_parallel_backend: String,

    /// Balance load across local data-parallel ranks, with an external balancer across nodes.
    #[arg(long)]
    pub data_parallel_hybrid_lb: bool,

    /// Use expert parallelism instead of tensor parallelism for MoE layers.
    #[arg(long)]
    pub enable_expert_parallel: bool,

    /// Balance the load of MoE experts.
    #[arg(long)]
    pub enable_eplb: bool,

    /// Redundant experts for expert parallelism.
    #[arg(long, default_value_t = 0)]
    pub num_redundant_experts: usize,

    /// Steps of expert load recorded for balancing.
    #[arg(long, default_value_t = 1000)]
    pub eplb_window_size: usize,

    /// Steps between two rearrangements of the experts.
    #[arg(long, default_value_t = 3000)]
    pub eplb_step_interval: usize,

    /// Log how balanced the experts are at each step (costs communication).
    #[arg(long)]
    pub eplb_log_balancedness: bool,

    /// Most workers loading weights at once, to bound host memory.
    #[arg(long)]
    pub max_parallel_loading_workers: Option<usize>,

    /// Profile Ray workers with nsight.
    #[arg(long)]
    pub ray_workers_use_nsight: bool,

    /// Use NCCL instead of the custom all-reduce kernel.
    #[arg(long)]
    pub disable_custom_all_reduce: bool,

    /// Worker class ("auto": chosen by platform).
    #[arg(long, default_value = "auto")]
    pub worker_cls: String,

    /// Class mixed into the worker class.
    #[arg(long, default_value = "")]
    pub worker_extension_cls: String,

    /// Run the vision encoder data-parallel instead of tensor-parallel.
    #[arg(long)]
    pub enable_multimodal_encoder_data_parallel: bool,
}

#[derive(Debug, Clone, Args, Serialize, Deserialize)]
#[command(next_help_heading = "CacheConfig")]
pub struct CacheArgs {
    /// Tokens per KV-cache block (unset: 16).
    #[arg(long, value_parser = parse::block_size())]
    pub block_size: Option<usize>,

    /// Fraction of device memory this instance may use for weights, activations and KV cache.
    #[arg(long, default_value_t = 0.9, value_parser = parse::fraction)]
    pub gpu_memory_utilization: f64,

    /// CPU swap space per GPU, in GiB.
    #[arg(long, default_value_t = 4.0, value_parser = parse::non_negative_f64)]
    pub swap_space: f64,

    /// Data type of the KV cache ("auto": the model's).
    #[arg(long, default_value = "auto", value_parser = ["auto", "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc"])]
    pub kv_cache_dtype: String,

    /// Use this many KV-cache blocks instead of the measured number (for testing preemption).
    #[arg(long)]
    pub num_gpu_blocks_override: Option<usize>,

    /// Reuse the KV cache of shared prompt prefixes (on unless turned off).
    #[arg(long)]
    pub enable_prefix_caching: Option<bool>,

    /// Hash of prefix-cache blocks: "builtin" (fast), "sha256", or "sha256_cbor_64bit" (reproducible across languages).
    #[arg(long, default_value = "builtin", value_parser = ["builtin", "sha256", "sha256_cbor_64bit"])]
    pub prefix_caching_hash_algo: String,

    /// GiB of weights per GPU to keep in CPU memory.
    #[arg(long, default_value_t = 0.0, value_parser = parse::non_negative_f64)]
    pub cpu_offload_gb: f64,

    /// Compute the fp8 KV-cache scales at run time instead of reading them from the checkpoint.
    #[arg(long)]
    pub calculate_kv_scales: bool,

    /// Skip prefill tokens in layers that share KV (work in progress in vLLM).
    #[arg(long)]
    pub kv_sharing_fast_prefill: bool,

    /// Data type of the Mamba cache ("auto": from the model).
    #[arg(long, default_value = "auto", value_parser = ["auto", "float32"])]
    pub mamba_cache_dtype: String,

    /// Data type of the Mamba SSM state ("auto": as --mamba-cache-dtype).
    #[arg(long, default_value = "auto", value_parser = ["auto", "float32"])]
    pub mamba_ssm_cache_dtype: String,
}
