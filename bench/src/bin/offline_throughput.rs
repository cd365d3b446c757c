//! Offline throughput of the engine (continuous batching, in-process), in the spirit of
//! `vllm bench throughput --dataset-name random`: N random prompts of a fixed length, each
//! generating a fixed number of tokens with ignore_eos, for several `--max-num-seqs` values.
//!
//!     cargo run --release -p bench --bin offline-throughput -- --num-prompts 200 --input-len 128 --output-len 128 --batch-sizes 1,8,32,64

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use engine::llm_engine::{EngineConfig, LlmEngine};
use engine::loader::{self, LoadOptions};
use engine::offline::generate;
use engine::request::EngineRequest;
use engine::sampling::SamplingParams;
use rand::{Rng, SeedableRng};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    model: Option<PathBuf>,
    #[arg(long, default_value = "auto")]
    dtype: String,
    #[arg(long, default_value_t = 200)]
    num_prompts: usize,
    #[arg(long, default_value_t = 128)]
    input_len: usize,
    #[arg(long, default_value_t = 128)]
    output_len: usize,
    /// `--max-num-seqs` values to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,64")]
    batch_sizes: Vec<usize>,
    /// Cap the prompt count for batch size b at `prompts_per_seq * b` (keeps batch 1 short).
    #[arg(long)]
    prompts_per_seq: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let model = args
        .model
        .clone()
        .unwrap_or_else(engine::paths::default_model_path);
    let max_len = args.input_len + args.output_len;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    println!(
        "model: {}  prompts: {} x ({} in, {} out)",
        model.display(),
        args.num_prompts,
        args.input_len,
        args.output_len
    );
    for &bs in &args.batch_sizes {
        let opts = LoadOptions {
            model: model.clone(),
            dtype: args.dtype.parse().map_err(anyhow::Error::msg)?,
            max_model_len: Some(max_len),
            ..Default::default()
        };
        let loaded = loader::load(&opts, &|_, _| {})
            .with_context(|| format!("loading {}", model.display()))?;
        let vocab = loaded.model.config().vocab_size as u32;
        let mut cfg = EngineConfig::new(max_len);
        cfg.scheduler.max_num_seqs = bs;
        cfg.enable_prefix_caching = false;
        let mut engine = LlmEngine::new(loaded, cfg)?;
        let n = args
            .prompts_per_seq
            .map_or(args.num_prompts, |p| (p * bs).min(args.num_prompts));
        let reqs: Vec<EngineRequest> = (0..n)
            .map(|_| {
                let prompt = (0..args.input_len)
                    .map(|_| rng.random_range(100..vocab))
                    .collect();
                let params = SamplingParams {
                    temperature: 0.0,
                    max_tokens: Some(args.output_len),
                    ignore_eos: true,
                    ..Default::default()
                };
                EngineRequest::new(prompt, params)
            })
            .collect();
        let t = Instant::now();
        let outs = generate(&mut engine, reqs)?;
        let secs = t.elapsed().as_secs_f64();
        let out_tokens: usize = outs.iter().map(|o| o.token_ids.len()).sum();
        let total = out_tokens + n * args.input_len;
        println!(
            "max-num-seqs {bs:>3}: {n} requests in {secs:.1} s  Throughput: {:.2} requests/s, {:.1} total tokens/s, {:.1} output tokens/s",
            n as f64 / secs,
            total as f64 / secs,
            out_tokens as f64 / secs
        );
    }
    Ok(())
}
