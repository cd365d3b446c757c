//! Throughput of the CPU matmul kernels per weight format and instruction set, on synthetic
//! weights: a matrix larger than the caches (bound by memory) and one that fits in L2 (bound
//! by compute), for one activation row (decode) and for 16 (batched decode).
//!
//!     cargo run --release -p bench --bin kernel-bench [-- --threads 2]
//!
//! Prints GB/s of weight bytes and GFLOP/s; compare with `mem_bandwidth` for the floor.

use std::time::Instant;

use kernels::cpu::pool::WorkerPool;
use kernels::cpu::quant::synthetic::random_blocks;
use kernels::cpu::{matmul_with, BlockFormat, Isa, RowPart, SharedBytes, WeightMatrix};

fn main() {
    let threads = std::env::args()
        .skip_while(|a| a != "--threads")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
    let pool = WorkerPool::new(threads, &[]);
    println!(
        "threads: {threads}; instruction sets: {:?}",
        Isa::available()
    );
    println!(
        "{:<6} {:<7} {:<5} {:>4} {:>10} {:>10} {:>9}",
        "format", "isa", "size", "m", "ms/call", "GB/s", "GFLOP/s"
    );
    let k = 1024;
    for format in [
        BlockFormat::Q4_0,
        BlockFormat::Q4_1,
        BlockFormat::Q5_0,
        BlockFormat::Q8_0,
        BlockFormat::Q4_K,
        BlockFormat::Q6_K,
        BlockFormat::F16,
        BlockFormat::F32,
    ] {
        for (label, n) in [("dram", 32768usize), ("l2", 128)] {
            let bytes = random_blocks(format, n * k / format.block_elems(), 7);
            let nbytes = bytes.len();
            let w = WeightMatrix::from_parts(
                k,
                vec![
                    RowPart::new(format, n, k, SharedBytes::from_vec(bytes), None).expect("shape"),
                ],
            )
            .expect("matrix");
            for isa in Isa::available() {
                for m in [1usize, 16] {
                    let x: Vec<f32> = (0..m * k).map(|i| ((i % 17) as f32 - 8.0) / 16.0).collect();
                    let mut out = vec![0f32; m * n];
                    matmul_with(isa, &pool, &x, m, &w, &mut out);
                    let reps = (2_000_000_000 / (nbytes * m).max(1)).clamp(3, 20_000);
                    let t = Instant::now();
                    for _ in 0..reps {
                        matmul_with(isa, &pool, &x, m, &w, &mut out);
                    }
                    let s = t.elapsed().as_secs_f64() / reps as f64;
                    println!(
                        "{:<6} {:<7} {:<5} {:>4} {:>10.4} {:>10.2} {:>9.1}",
                        format.name(),
                        isa.name(),
                        label,
                        m,
                        s * 1e3,
                        nbytes as f64 / s / 1e9,
                        2.0 * (m * n * k) as f64 / s / 1e9
                    );
                }
            }
        }
    }
}
