//! `vllm bench throughput`: a dataset of prompts through an in-process engine, all submitted at
//! once, every request generating its expected length (ignore_eos). Flags, defaults and printed
//! lines are vLLM's; every `vllm serve` flag is accepted as well.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Parser;
use engine::request::EngineRequest;
use engine::sampling::SamplingParams;
use serde_json::json;

use crate::datasets::{self, SampleRequest};
use crate::in_process;
use crate::report::write_json;
use progress::Progress;

/// Benchmark offline inference throughput.
#[derive(Debug, Parser)]
#[command(about = "Benchmark offline inference throughput (engine in-process).")]
pub struct ThroughputArgs {
    /// Inference backend (only the in-process engine).
    #[arg(long, default_value = "vllm", value_parser = ["vllm"])]
    pub backend: String,
    /// Name of the dataset to benchmark on.
    #[arg(long, default_value = "sharegpt", value_parser = ["sharegpt", "random", "sonnet", "prefix_repetition"])]
    pub dataset_name: String,
    /// Path to the dataset.
    #[arg(long)]
    pub dataset_path: Option<PathBuf>,
    /// Input prompt length for each request.
    #[arg(long)]
    pub input_len: Option<usize>,
    /// Output length for each request; overrides the output length from the dataset.
    #[arg(long)]
    pub output_len: Option<usize>,
    /// Number of generated sequences per prompt.
    #[arg(long, default_value_t = 1)]
    pub n: usize,
    /// Number of prompts to process.
    #[arg(long, default_value_t = 1000)]
    pub num_prompts: usize,
    /// Path to save the throughput results in JSON format.
    #[arg(long, value_name = "FILE")]
    pub output_json: Option<PathBuf>,
    /// Do not detokenize the response (leave detokenization time out of the measurement).
    #[arg(long)]
    pub disable_detokenize: bool,
    /// Number of fixed prefix tokens before the random context in a request.
    #[arg(long, default_value_t = 0)]
    pub prefix_len: usize,
    /// Range ratio for sampling input/output length (random dataset), in [0, 1).
    #[arg(long, default_value_t = 0.0)]
    pub random_range_ratio: f64,
    /// Prefix tokens per request (prefix_repetition dataset).
    #[arg(long, default_value_t = 256)]
    pub prefix_repetition_prefix_len: usize,
    /// Suffix tokens per request (prefix_repetition dataset).
    #[arg(long, default_value_t = 256)]
    pub prefix_repetition_suffix_len: usize,
    /// Number of prefixes (prefix_repetition dataset); prompts per prefix is num_prompts / this.
    #[arg(long, default_value_t = 10)]
    pub prefix_repetition_num_prefixes: usize,
    /// Output tokens per request (prefix_repetition dataset).
    #[arg(long, default_value_t = 128)]
    pub prefix_repetition_output_len: usize,
    /// Do not shuffle the dataset.
    #[arg(long)]
    pub disable_shuffle: bool,
}

/// The totals of one run, as printed and saved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThroughputResult {
    pub elapsed_time: f64,
    pub num_requests: usize,
    pub total_prompt_tokens: usize,
    pub total_output_tokens: usize,
}

/// `vllm bench throughput ARGS...`, report on `out`.
pub fn run(args: Vec<String>, out: &mut dyn Write) -> anyhow::Result<()> {
    let Some((mut args, serve_args)) =
        in_process::parse_own::<ThroughputArgs>("vllm bench throughput", args, out)?
    else {
        return Ok(());
    };
    if args.n == 0 {
        bail!("--n must be positive");
    }
    if args.dataset_path.is_none() && args.dataset_name != "prefix_repetition" {
        writeln!(
            out,
            "When dataset path is not set, it will default to random dataset"
        )?;
        args.dataset_name = "random".into();
        if args.input_len.is_none() {
            bail!("input_len must be provided for a random dataset");
        }
    }
    let mut seed = 0;
    let engine = in_process::start("vllm bench throughput", serve_args, |cfg| {
        seed = cfg.model_config.seed.unwrap_or(0)
    })?;
    let tok = engine.state.tokenizer.clone();
    let requests = sample(&args, &tok, engine.state.chat_template.as_ref(), seed)?;
    if requests.is_empty() {
        bail!("the dataset gave no requests");
    }
    let max_len = engine.max_model_len();
    if requests
        .iter()
        .any(|r| r.prompt_len + r.expected_output_len > max_len)
    {
        bail!("Please ensure that max_model_len is greater than the sum of prompt_len and expected_output_len for all requests.");
    }
    let mut engine_requests = Vec::with_capacity(requests.len());
    for r in &requests {
        // Prompts are text, tokenized as the engine's API would (special tokens included).
        let ids = tok.encode(&r.prompt, true).context("tokenizing a prompt")?;
        let params = SamplingParams {
            n: args.n,
            temperature: 1.0,
            top_p: 1.0,
            ignore_eos: true,
            max_tokens: Some(r.expected_output_len),
            detokenize: !args.disable_detokenize,
            ..Default::default()
        };
        engine_requests.push(EngineRequest::new(ids, params));
    }
    let bar = Arc::new(Progress::new(
        "Processed prompts",
        requests.len() * args.n,
        true,
    ));
    let start = Instant::now();
    let done = engine.generate(engine_requests, Some(bar.clone()))?;
    let elapsed_time = start.elapsed().as_secs_f64();
    bar.finish();
    let result = ThroughputResult {
        elapsed_time,
        num_requests: requests.len(),
        total_prompt_tokens: done.iter().map(|g| g.prompt_tokens).sum(),
        total_output_tokens: done.iter().map(|g| g.output_tokens).sum(),
    };
    report(&result, args.output_json.as_deref(), out)
}

fn sample(
    args: &ThroughputArgs,
    tok: &engine::tokenizer::Tokenizer,
    template: Option<&engine::tokenizer::ChatTemplate>,
    seed: u64,
) -> anyhow::Result<Vec<SampleRequest>> {
    let num_requests = args.num_prompts;
    let path = || {
        args.dataset_path
            .clone()
            .context("--dataset-path is required for this dataset")
    };
    Ok(match args.dataset_name.as_str() {
        "random" => datasets::random(
            tok,
            &datasets::RandomOptions {
                num_requests,
                input_len: args.input_len.unwrap_or(1024),
                output_len: args.output_len.unwrap_or(128),
                range_ratio: args.random_range_ratio,
                prefix_len: args.prefix_len,
                seed,
            },
        )?,
        "sharegpt" => datasets::sharegpt(
            tok,
            &datasets::ShareGptOptions {
                path: path()?,
                num_requests,
                output_len: args.output_len,
                seed,
                disable_shuffle: args.disable_shuffle,
                no_oversample: false,
            },
        )?,
        "sonnet" => datasets::sonnet(
            tok,
            template,
            &datasets::SonnetOptions {
                path: path()?,
                num_requests,
                input_len: args.input_len.unwrap_or(550),
                output_len: args.output_len.unwrap_or(150),
                prefix_len: args.prefix_len,
                return_prompt_formatted: true,
                seed,
            },
        )?,
        "prefix_repetition" => datasets::prefix_repetition(
            tok,
            &datasets::PrefixRepetitionOptions {
                num_requests,
                prefix_len: args.prefix_repetition_prefix_len,
                suffix_len: args.prefix_repetition_suffix_len,
                num_prefixes: args.prefix_repetition_num_prefixes,
                output_len: args.prefix_repetition_output_len,
                seed,
                disable_shuffle: args.disable_shuffle,
            },
        )?,
        other => bail!("unknown dataset name: {other}"),
    })
}

/// Prints vLLM's three lines and writes the JSON file when asked.
pub fn report(
    r: &ThroughputResult,
    output_json: Option<&std::path::Path>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let total_num_tokens = r.total_prompt_tokens + r.total_output_tokens;
    let secs = r.elapsed_time.max(f64::MIN_POSITIVE);
    writeln!(
        out,
        "Throughput: {:.2} requests/s, {:.2} total tokens/s, {:.2} output tokens/s",
        r.num_requests as f64 / secs,
        total_num_tokens as f64 / secs,
        r.total_output_tokens as f64 / secs
    )?;
    writeln!(out, "Total num prompt tokens:  {}", r.total_prompt_tokens)?;
    writeln!(out, "Total num output tokens:  {}", r.total_output_tokens)?;
    if let Some(path) = output_json {
        let results = json!({
            "elapsed_time": r.elapsed_time,
            "num_requests": r.num_requests,
            "total_num_tokens": total_num_tokens,
            "requests_per_second": r.num_requests as f64 / secs,
            "tokens_per_second": total_num_tokens as f64 / secs,
        });
        write_json(path, &results).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
