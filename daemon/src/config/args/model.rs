//! Flags that choose the model and how its weights are loaded ("ModelConfig", "LoadConfig").

use std::path::PathBuf;

use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::parse;
use crate::config::size::parse_human_len;

#[derive(Debug, Clone, Args, Serialize, Deserialize)]
#[command(next_help_heading = "ModelConfig")]
pub struct ModelArgs {
    /// Model to serve: a GGUF file, a Hugging Face model folder, or a Hub repo id (org/name;
    /// org/name:QUANT for one GGUF file of the repo), taken from the Hugging Face cache or
    /// downloaded (HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE apply). Default: the built-in model.
    /// Architectures: LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM (also GGUF and CUDA);
    /// MistralForCausalLM, Gemma2ForCausalLM, Gemma3ForCausalLM, Phi3ForCausalLM,
    /// MixtralForCausalLM, Qwen3MoeForCausalLM (safetensors, CPU).
    #[arg(long, value_name = "PATH|REPO")]
    pub model: Option<PathBuf>,

    /// Kind of model runner.
    #[arg(long, default_value = "auto", value_parser = ["auto", "draft", "generate", "pooling"])]
    pub runner: String,

    /// Adapt the model to another use (e.g. a generative model used for embeddings).
    #[arg(long, default_value = "auto", value_parser = ["auto", "classify", "embed", "none", "reward"])]
    pub convert: String,

    /// Deprecated: what the model is used for; use --runner and --convert.
    #[arg(long, value_parser = [
        "auto", "classify", "draft", "embed", "embedding", "generate", "reward", "score", "transcription",
    ])]
    pub task: Option<String>,

    /// Tokenizer to use: a folder, a tokenizer.json, a GGUF file or a Hub repo id (default: the model's own).
    #[arg(long, value_name = "PATH|REPO")]
    pub tokenizer: Option<PathBuf>,

    /// Tokenizer implementation: "auto" uses the fast tokenizer; "slow", "mistral" and "custom" select others.
    #[arg(long, default_value = "auto", value_parser = ["auto", "custom", "mistral", "slow"])]
    pub tokenizer_mode: String,

    /// Trust code shipped with the model (vllm-rs never runs such code).
    #[arg(long)]
    pub trust_remote_code: bool,

    /// Data type of weights and activations.
    ///
    /// "auto" keeps BF16 models in BF16 and runs FP32/FP16 models in FP16; "half" and "float16"
    /// are FP16; "float" and "float32" are FP32.
    #[arg(long, default_value = "auto", value_parser = ["auto", "bfloat16", "float", "float16", "float32", "half"])]
    pub dtype: String,

    /// Random seed, for reproducible sampling (unset: 0).
    #[arg(long)]
    pub seed: Option<u64>,

    /// Hugging Face config.json to use instead of the model's own: a file, a folder or a Hub repo id.
    #[arg(long, value_name = "PATH|REPO")]
    pub hf_config_path: Option<PathBuf>,

    /// Server directories from which requests may read local images or videos (a security risk).
    #[arg(long, default_value = "")]
    pub allowed_local_media_path: String,

    /// Model revision on the Hub (branch, tag or commit; default main).
    #[arg(long)]
    pub revision: Option<String>,

    /// Revision of the model code on the Hub.
    #[arg(long)]
    pub code_revision: Option<String>,

    /// RoPE scaling, e.g. {"rope_type":"dynamic","factor":2.0}; JSON or dotted keys.
    #[arg(long, default_value = "{}", value_parser = parse::json_object)]
    pub rope_scaling: Value,

    /// RoPE theta, usually together with --rope-scaling.
    #[arg(long, value_parser = parse::finite_f64)]
    pub rope_theta: Option<f64>,

    /// Tokenizer revision on the Hub (default: --revision).
    #[arg(long)]
    pub tokenizer_revision: Option<String>,

    /// Context length (prompt plus output); default from the model. Accepts 1k, 1K, 25.6k, 2M.
    #[arg(long, value_parser = parse_human_len, value_name = "TOKENS")]
    pub max_model_len: Option<usize>,

    /// Quantization method of the weights (default: as the model's files say).
    #[arg(long, short = 'q')]
    pub quantization: Option<String>,

    /// Always run eagerly: no CUDA graphs.
    #[arg(long)]
    pub enforce_eager: bool,

    /// Longest sequence covered by CUDA graphs; longer ones run eagerly.
    #[arg(long, default_value_t = 8192)]
    pub max_seq_len_to_capture: usize,

    /// Most log probabilities a request may ask for; -1 for no cap.
    #[arg(long, default_value = "20", value_parser = parse::max_logprobs, allow_negative_numbers = true)]
    pub max_logprobs: usize,

    /// What logprobs report: raw or processed (after logit processors), as logprobs or logits.
    #[arg(long, default_value = "raw_logprobs",
          value_parser = ["processed_logits", "processed_logprobs", "raw_logits", "raw_logprobs"])]
    pub logprobs_mode: String,

    /// Disable the sliding window and cap the context to the window size.
    #[arg(long)]
    pub disable_sliding_window: bool,

    /// Disable cascade attention.
    #[arg(long)]
    pub disable_cascade_attn: bool,

    /// Skip the tokenizer: prompts must be token ids, outputs are token ids.
    #[arg(long)]
    pub skip_tokenizer_init: bool,

    /// Accept prompt embeddings (prompt_embeds) as input.
    #[arg(long)]
    pub enable_prompt_embeds: bool,

    /// Names the model answers to in the API; the first is the one reported (default: the model path).
    #[arg(long, num_args = 1.., value_name = "NAME")]
    pub served_model_name: Vec<String>,

    /// Deprecated: disable asynchronous output processing.
    #[arg(long)]
    pub disable_async_output_proc: bool,

    /// Format of the model config: "auto" tries Hugging Face, then Mistral.
    #[arg(long, default_value = "auto", value_parser = ["auto", "hf", "mistral"])]
    pub config_format: String,

    /// Token for downloads from the Hub (default: HF_TOKEN, else the token `hf auth login` saved).
    #[arg(long)]
    pub hf_token: Option<String>,

    /// Values that override the model's Hugging Face config; JSON or dotted keys.
    #[arg(long, default_value = "{}", value_parser = parse::json_object)]
    pub hf_overrides: Value,

    /// Neuron device config overrides; JSON or dotted keys.
    #[arg(long, default_value = "{}", value_parser = parse::json_object)]
    pub override_neuron_config: Value,

    /// Pooling config overrides for pooling models; JSON or dotted keys.
    #[arg(long, value_parser = parse::json_object)]
    pub override_pooler_config: Option<Value>,

    /// Regex of logits processor names that requests may use (unset: none).
    #[arg(long)]
    pub logits_processor_pattern: Option<String>,

    /// Generation defaults: "auto" reads the model's generation_config.json, "vllm" uses none, or a folder.
    #[arg(long, default_value = "auto")]
    pub generation_config: String,

    /// Generation defaults that override the model's, e.g. {"temperature": 0.5}; JSON or dotted keys.
    #[arg(long, default_value = "{}", value_parser = parse::json_object)]
    pub override_generation_config: Value,

    /// Allow the engine to sleep and free device memory.
    #[arg(long)]
    pub enable_sleep_mode: bool,

    /// Model implementation: "vllm", "transformers", or "auto" (vllm when available).
    #[arg(long, default_value = "auto", value_parser = ["auto", "vllm", "transformers"])]
    pub model_impl: String,

    /// Data type of attention, if different from --dtype.
    #[arg(long)]
    pub override_attention_dtype: Option<String>,

    /// Logits processors to load (class names in vLLM).
    #[arg(long, num_args = 1..)]
    pub logits_processors: Vec<String>,
}

#[derive(Debug, Clone, Args, Serialize, Deserialize)]
#[command(next_help_heading = "LoadConfig")]
pub struct LoadArgs {
    /// Weight format: auto (safetensors, then GGUF), safetensors, gguf, dummy (random weights), or vLLM's others.
    #[arg(long, default_value = "auto", value_parser = [
        "auto", "pt", "safetensors", "npcache", "dummy", "tensorizer", "runai_streamer", "bitsandbytes",
        "sharded_state", "gguf", "mistral",
    ])]
    pub load_format: String,

    /// Hugging Face cache folder for downloads (default: HF_HUB_CACHE, else $HF_HOME/hub).
    #[arg(long, value_name = "PATH")]
    pub download_dir: Option<PathBuf>,

    /// Extra settings for the weight loader; JSON or dotted keys.
    #[arg(long, default_value = "{}", value_parser = parse::json_object)]
    pub model_loader_extra_config: Value,

    /// File patterns (fnmatch) of weights not to download (default: original/**/*).
    #[arg(long, num_args = 1..)]
    pub ignore_patterns: Vec<String>,

    /// Show a progress bar while loading weights.
    #[arg(long, default_value_t = true)]
    pub use_tqdm_on_load: bool,

    /// Device map for loading PyTorch checkpoints.
    #[arg(long, default_value = "cpu")]
    pub pt_load_map_location: String,
}
