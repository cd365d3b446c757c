//! The flags of `vllm bench serve` (vLLM's names and defaults).

use std::path::PathBuf;

use clap::Args;

/// Benchmark online serving throughput.
#[derive(Debug, Clone, Args)]
#[command(about = "Benchmark online serving: streamed requests to an OpenAI-compatible server.")]
pub struct ServeArgs {
    /// Seed of the dataset sampling and the request arrivals.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Number of prompts to process.
    #[arg(long, default_value_t = 1000)]
    pub num_prompts: usize,
    /// Name of the dataset to benchmark on.
    #[arg(long, default_value = "random", value_parser = ["sharegpt", "sonnet", "random", "custom", "prefix_repetition"])]
    pub dataset_name: String,
    /// Path to the sharegpt/sonnet/custom dataset.
    #[arg(long)]
    pub dataset_path: Option<PathBuf>,
    /// Do not oversample if the dataset has fewer samples than --num-prompts.
    #[arg(long)]
    pub no_oversample: bool,
    /// Skip applying the chat template to prompts of datasets that use one.
    #[arg(long)]
    pub skip_chat_template: bool,
    /// Disable shuffling of dataset samples for a deterministic order.
    #[arg(long)]
    pub disable_shuffle: bool,
    /// Output tokens per request (custom dataset).
    #[arg(long, default_value_t = 256, help_heading = "Custom dataset options")]
    pub custom_output_len: usize,
    /// Input tokens per request (sonnet dataset).
    #[arg(long, default_value_t = 550, help_heading = "Sonnet dataset options")]
    pub sonnet_input_len: usize,
    /// Output tokens per request (sonnet dataset).
    #[arg(long, default_value_t = 150, help_heading = "Sonnet dataset options")]
    pub sonnet_output_len: usize,
    /// Prefix tokens per request (sonnet dataset).
    #[arg(long, default_value_t = 200, help_heading = "Sonnet dataset options")]
    pub sonnet_prefix_len: usize,
    /// Output length for each request; overrides the output length from the ShareGPT dataset.
    #[arg(long, help_heading = "ShareGPT dataset options")]
    pub sharegpt_output_len: Option<usize>,
    /// Input tokens per request (random dataset).
    #[arg(long, default_value_t = 1024, help_heading = "Random dataset options")]
    pub random_input_len: usize,
    /// Output tokens per request (random dataset).
    #[arg(long, default_value_t = 128, help_heading = "Random dataset options")]
    pub random_output_len: usize,
    /// Range ratio for sampling input/output lengths, in [0, 1) (random dataset).
    #[arg(long, default_value_t = 0.0, help_heading = "Random dataset options")]
    pub random_range_ratio: f64,
    /// Fixed prefix tokens before the random context of every request (random dataset).
    #[arg(long, default_value_t = 0, help_heading = "Random dataset options")]
    pub random_prefix_len: usize,
    /// Prefix tokens per request (prefix_repetition dataset).
    #[arg(
        long,
        default_value_t = 256,
        help_heading = "Prefix repetition dataset options"
    )]
    pub prefix_repetition_prefix_len: usize,
    /// Suffix tokens per request (prefix_repetition dataset).
    #[arg(
        long,
        default_value_t = 256,
        help_heading = "Prefix repetition dataset options"
    )]
    pub prefix_repetition_suffix_len: usize,
    /// Number of prefixes (prefix_repetition dataset); prompts per prefix is num_prompts / this.
    #[arg(
        long,
        default_value_t = 10,
        help_heading = "Prefix repetition dataset options"
    )]
    pub prefix_repetition_num_prefixes: usize,
    /// Output tokens per request (prefix_repetition dataset).
    #[arg(
        long,
        default_value_t = 128,
        help_heading = "Prefix repetition dataset options"
    )]
    pub prefix_repetition_output_len: usize,

    /// Label (prefix) of the result file name; default: the backend.
    #[arg(long)]
    pub label: Option<String>,
    /// The kind of endpoint: completions (`openai`), chat completions (`openai-chat`) or
    /// embeddings (`openai-embeddings`; also chosen by `--endpoint /v1/embeddings`).
    #[arg(long, default_value = "openai", value_parser = ["openai", "openai-chat", "openai-embeddings"])]
    pub backend: String,
    /// Server URL (with or without the final /v1), instead of --host and --port.
    #[arg(long, visible_alias = "url")]
    pub base_url: Option<String>,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// API endpoint.
    #[arg(long, default_value = "/v1/completions")]
    pub endpoint: String,
    /// Extra headers for every request.
    #[arg(long, value_name = "KEY=VALUE", num_args = 0..)]
    pub header: Vec<String>,
    /// Maximum number of requests in flight; the request rate still decides when they start.
    #[arg(long)]
    pub max_concurrency: Option<usize>,
    /// Model name; default: the first model the server lists at /v1/models.
    #[arg(long)]
    pub model: Option<String>,
    /// General input length: sets --random-input-len.
    #[arg(long)]
    pub input_len: Option<usize>,
    /// General output length: sets the output length of every dataset.
    #[arg(long)]
    pub output_len: Option<usize>,
    /// Tokenizer (a GGUF file, a tokenizer.json or a folder holding one); default: the model's.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Logprobs per token to request (completions).
    #[arg(long)]
    pub logprobs: Option<u32>,
    /// Requests per second; `inf` sends them all at once. Otherwise arrivals are a Poisson
    /// process or, with --burstiness, gamma distributed.
    #[arg(long, default_value_t = f64::INFINITY)]
    pub request_rate: f64,
    /// Gamma shape of the request gaps: 1 is Poisson, below 1 burstier, above 1 more even.
    #[arg(long, default_value_t = 1.0)]
    pub burstiness: f64,
    /// No progress bar.
    #[arg(long)]
    pub disable_tqdm: bool,
    /// Warm-up requests (the first prompt) before the measured run.
    #[arg(long, default_value_t = 0)]
    pub num_warmups: usize,
    /// Save the results to a JSON file.
    #[arg(long)]
    pub save_result: bool,
    /// Keep per-request data (texts, TTFTs, ITLs, errors) in the saved results.
    #[arg(long)]
    pub save_detailed: bool,
    /// Append the results to an existing JSON file.
    #[arg(long)]
    pub append_result: bool,
    /// Extra KEY=VALUE pairs recorded in the result file.
    #[arg(long, value_name = "KEY=VALUE", num_args = 0..)]
    pub metadata: Vec<String>,
    /// Folder of the result file (default: the current folder).
    #[arg(long)]
    pub result_dir: Option<PathBuf>,
    /// Result file name (default: LABEL-RATEqps[-concurrencyN]-MODEL-DATE.json).
    #[arg(long)]
    pub result_filename: Option<String>,
    /// Set ignore_eos in every request (always on for the random dataset).
    #[arg(long)]
    pub ignore_eos: bool,
    /// Comma-separated metrics to report percentiles for: ttft, tpot, itl, e2el.
    #[arg(long, default_value = "ttft,tpot,itl")]
    pub percentile_metrics: String,
    /// Comma-separated percentiles to report.
    #[arg(long, default_value = "99")]
    pub metric_percentiles: String,
    /// Service level objectives for goodput, KEY:VALUE in ms (keys: ttft, tpot, e2el).
    #[arg(long, value_name = "KEY:VALUE", num_args = 1..)]
    pub goodput: Vec<String>,
    /// Prefix of the x-request-id of each request; default: a random one.
    #[arg(long)]
    pub request_id_prefix: Option<String>,
    #[arg(long, help_heading = "Sampling parameters")]
    pub top_p: Option<f64>,
    #[arg(long, help_heading = "Sampling parameters")]
    pub top_k: Option<i64>,
    #[arg(long, help_heading = "Sampling parameters")]
    pub min_p: Option<f64>,
    #[arg(long, help_heading = "Sampling parameters")]
    pub temperature: Option<f64>,
    #[arg(long, help_heading = "Sampling parameters")]
    pub frequency_penalty: Option<f64>,
    #[arg(long, help_heading = "Sampling parameters")]
    pub presence_penalty: Option<f64>,
    #[arg(long, help_heading = "Sampling parameters")]
    pub repetition_penalty: Option<f64>,
    /// Model name used in the API, when it differs from --model.
    #[arg(long)]
    pub served_model_name: Option<String>,
    /// Seconds to wait for the endpoint to answer a first request; 0 skips the check.
    #[arg(long, default_value_t = 0)]
    pub ready_check_timeout_sec: u64,
    /// JSON object merged into every request body.
    #[arg(long, value_name = "JSON")]
    pub extra_body: Option<String>,
    /// Do not verify TLS certificates (self-signed servers).
    #[arg(long)]
    pub insecure: bool,
}
