//! Plain forward-pass benchmark: load time, resident memory, prefill and single-sequence
//! decode speed of a model on the CPU backend.
//!
//!     cargo run --release -p bench --bin decode-bench -- --model PATH [--prompt-len 128] [--decode-len 64]

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use engine::kv_cache::KvCache;
use engine::loader::{self, LoadOptions};
use engine::model::SequenceInput;

#[derive(Parser)]
struct Args {
    /// GGUF file or Hugging Face folder (default: the cached default model).
    #[arg(long)]
    model: Option<PathBuf>,
    #[arg(long, default_value = "auto")]
    dtype: String,
    #[arg(long, default_value = "auto")]
    load_format: String,
    #[arg(long, default_value_t = 128)]
    prompt_len: usize,
    #[arg(long, default_value_t = 64)]
    decode_len: usize,
}

/// Peak and current resident memory (VmHWM, VmRSS) in MiB, from /proc on Linux.
fn memory_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map(|kib| kib / 1024.0)
            .unwrap_or(f64::NAN)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let model = args.model.unwrap_or_else(engine::paths::default_model_path);
    let opts = LoadOptions {
        model: model.clone(),
        dtype: args.dtype.parse().map_err(anyhow::Error::msg)?,
        load_format: args.load_format.parse().map_err(anyhow::Error::msg)?,
        max_model_len: Some(args.prompt_len + args.decode_len + 1),
        ..Default::default()
    };
    let on_layer = progress::for_counts("Loading model layers", true, 4, |d, t, _| {
        eprintln!("loading layers {d}/{t}")
    });
    let loaded =
        loader::load(&opts, &on_layer).with_context(|| format!("loading {}", model.display()))?;
    let (peak, rss) = memory_mib();
    let m = &loaded.model;
    println!("model: {}", model.display());
    println!(
        "load time: {:.2} s, weights {:.0} MiB ({:?}), RSS {:.0} MiB (peak {:.0} MiB)",
        loaded.load_time.as_secs_f64(),
        m.weight_bytes() as f64 / 1048576.0,
        loaded.weight_dtype,
        rss,
        peak
    );

    let block = 16;
    let total = args.prompt_len + args.decode_len;
    let mut kv = KvCache::new(
        m.config().num_hidden_layers,
        total.div_ceil(block),
        m.kv_layout(block),
    );
    let table: Vec<u32> = (0..total.div_ceil(block) as u32).collect();
    // A deterministic prompt of ordinary vocabulary ids.
    let vocab = m.config().vocab_size as u32;
    let prompt: Vec<u32> = (0..args.prompt_len as u32)
        .map(|i| 1000 + (i * 7919) % (vocab / 2))
        .collect();

    let t0 = Instant::now();
    let out = m.forward(
        &[SequenceInput {
            tokens: &prompt,
            start_pos: 0,
            block_table: &table,
            all_logits: false,
        }],
        &mut kv,
    )?;
    let prefill = t0.elapsed().as_secs_f64();
    let mut next = argmax(out.last(0));
    let t1 = Instant::now();
    for step in 0..args.decode_len {
        let tok = [next];
        let out = m.forward(
            &[SequenceInput {
                tokens: &tok,
                start_pos: args.prompt_len + step,
                block_table: &table,
                all_logits: false,
            }],
            &mut kv,
        )?;
        next = argmax(out.last(0));
    }
    let decode = t1.elapsed().as_secs_f64();
    println!("threads: {}", rayon_threads());
    println!(
        "prefill: {} tokens in {:.3} s = {:.1} tokens/s",
        args.prompt_len,
        prefill,
        args.prompt_len as f64 / prefill
    );
    println!(
        "decode (1 sequence): {} tokens in {:.3} s = {:.1} tokens/s ({:.1} ms/token)",
        args.decode_len,
        decode,
        args.decode_len as f64 / decode,
        decode * 1000.0 / args.decode_len as f64
    );
    Ok(())
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}
