//! `vllm bench latency`: the time to run one batch of random prompts to completion, measured
//! over many iterations after a warm-up, engine in-process. Flags, defaults and printed lines
//! are vLLM's; every `vllm serve` flag is accepted as well.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Parser;
use engine::request::EngineRequest;
use engine::sampling::SamplingParams;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::in_process;
use crate::report::{py_float, write_json};
use crate::stats;
use progress::Progress;

/// The percentiles vLLM reports.
pub const PERCENTAGES: [u32; 6] = [10, 25, 50, 75, 90, 99];

/// Prompt ids are drawn below this, as vLLM draws them (`randint(10000)`).
const PROMPT_ID_BOUND: u32 = 10_000;

/// Benchmark the latency of processing a single batch of requests.
#[derive(Debug, Parser)]
#[command(
    about = "Benchmark the latency of processing a single batch of requests (engine in-process)."
)]
pub struct LatencyArgs {
    /// Prompt length in tokens.
    #[arg(long, default_value_t = 32)]
    pub input_len: usize,
    /// Tokens generated per sequence.
    #[arg(long, default_value_t = 128)]
    pub output_len: usize,
    /// Prompts in the batch.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Number of generated sequences per prompt.
    #[arg(long, default_value_t = 1)]
    pub n: usize,
    /// Number of iterations to run for warmup.
    #[arg(long, default_value_t = 10)]
    pub num_iters_warmup: usize,
    /// Number of iterations to run.
    #[arg(long, default_value_t = 30)]
    pub num_iters: usize,
    /// Path to save the latency results in JSON format.
    #[arg(long, value_name = "FILE")]
    pub output_json: Option<PathBuf>,
    /// Do not detokenize responses (leave detokenization time out of the measurement).
    #[arg(long)]
    pub disable_detokenize: bool,
}

/// `vllm bench latency ARGS...`, report on `out`.
pub fn run(args: Vec<String>, out: &mut dyn Write) -> anyhow::Result<()> {
    let Some((args, serve_args)) =
        in_process::parse_own::<LatencyArgs>("vllm bench latency", args, out)?
    else {
        return Ok(());
    };
    if args.batch_size == 0 || args.n == 0 || args.output_len == 0 {
        bail!("--batch-size, --n and --output-len must be positive");
    }
    let mut seed = 0;
    let engine = in_process::start("vllm bench latency", serve_args, |cfg| {
        // vLLM turns prefix caching off for this benchmark unless asked: repeating one batch
        // would otherwise measure cache hits.
        cfg.cache.enable_prefix_caching.get_or_insert(false);
        seed = cfg.model_config.seed.unwrap_or(0);
    })?;
    if engine.max_model_len() < args.input_len + args.output_len {
        bail!(
            "Please ensure that max_model_len is greater than the sum of input_len and output_len."
        );
    }
    let params = SamplingParams {
        n: args.n,
        temperature: 1.0,
        top_p: 1.0,
        ignore_eos: true,
        max_tokens: Some(args.output_len),
        detokenize: !args.disable_detokenize,
        ..Default::default()
    };
    let bound = PROMPT_ID_BOUND
        .min(engine.state.tokenizer.vocab_size() as u32)
        .max(1);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let prompts: Vec<Vec<u32>> = (0..args.batch_size)
        .map(|_| {
            (0..args.input_len)
                .map(|_| rng.random_range(0..bound))
                .collect()
        })
        .collect();
    let run_once = || -> anyhow::Result<f64> {
        let reqs = prompts
            .iter()
            .map(|p| EngineRequest::new(p.clone(), params.clone()))
            .collect();
        let t = Instant::now();
        engine.generate(reqs, None)?;
        Ok(t.elapsed().as_secs_f64())
    };

    writeln!(out, "Warming up...")?;
    let bar = Arc::new(Progress::new(
        "Warmup iterations",
        args.num_iters_warmup,
        true,
    ));
    for _ in 0..args.num_iters_warmup {
        run_once()?;
        bar.inc();
    }
    bar.finish();
    let bar = Arc::new(Progress::new("Bench iterations", args.num_iters, true));
    let mut latencies = Vec::with_capacity(args.num_iters);
    for _ in 0..args.num_iters {
        latencies.push(run_once()?);
        bar.inc();
    }
    bar.finish();
    if latencies.is_empty() {
        bail!("--num-iters must be positive");
    }
    report(&latencies, args.output_json.as_deref(), out)
}

/// Prints the summary lines and writes the JSON file when asked.
pub fn report(
    latencies: &[f64],
    output_json: Option<&std::path::Path>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let avg = stats::mean(latencies);
    let std = stats::std_dev(latencies);
    writeln!(out, "Avg latency: {} seconds", py_float(avg))?;
    writeln!(out, "Std latency: {} seconds", py_float(std))?;
    let mut percentiles = serde_json::Map::new();
    for p in PERCENTAGES {
        let v = stats::percentile(latencies, p as f64);
        writeln!(out, "{p}% percentile latency: {} seconds", py_float(v))?;
        percentiles.insert(p.to_string(), json!(v));
    }
    if let Some(path) = output_json {
        let results = json!({
            "avg_latency": avg,
            "std_latency": std,
            "latencies": latencies,
            "percentiles": percentiles,
        });
        write_json(path, &results).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
