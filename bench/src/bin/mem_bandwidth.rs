//! Measures the machine's memory read bandwidth the way decode uses it: every thread streams its
//! share of a buffer far larger than the caches, once per pass. The best of several passes is the
//! figure the benchmark floors use (weight bytes read per token / this bandwidth).
//!
//! Usage: mem_bandwidth [--threads N] [--mib SIZE] [--json]

use std::time::Instant;

fn parse_args() -> Result<(usize, usize, bool), String> {
    let mut threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut mib = 1024usize;
    let mut json = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--threads" => {
                threads = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--threads needs a number")?
            }
            "--mib" => {
                mib = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--mib needs a number")?
            }
            "--json" => json = true,
            "-h" | "--help" => {
                return Err("usage: mem_bandwidth [--threads N] [--mib SIZE] [--json]".into())
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok((threads.max(1), mib.max(64), json))
}

/// Eight independent accumulators so the loop is bound by loads, not by the add latency.
fn sum_chunk(data: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

fn main() {
    let (threads, mib, json) = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let len = mib * (1 << 20) / 4;
    // Non-zero contents so the pages are really backed, not the shared zero page.
    let buf: Vec<f32> = (0..len).map(|i| (i % 7) as f32).collect();
    let per = len.div_ceil(threads);
    let mut best = 0f64;
    let mut sink = 0f32;
    for _ in 0..6 {
        let t = Instant::now();
        let sums: Vec<f32> = std::thread::scope(|s| {
            let handles: Vec<_> = buf
                .chunks(per)
                .map(|part| s.spawn(move || sum_chunk(part)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(0.0))
                .collect()
        });
        let secs = t.elapsed().as_secs_f64();
        sink += sums.iter().sum::<f32>();
        best = best.max((len * 4) as f64 / secs / 1e9);
    }
    if json {
        println!(
            "{{\"bandwidth_gb_s\": {best:.2}, \"threads\": {threads}, \"buffer_mib\": {mib}}}"
        );
    } else {
        println!("read bandwidth: {best:.2} GB/s ({threads} threads, {mib} MiB buffer, best of 6; checksum {sink})");
    }
}
