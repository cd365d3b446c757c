//! `gpu-sampler-check [RESULT_JSON]`: the GPU sampling kernel (`kernels/cuda/sampling.cu`, as
//! the engine calls it under `VLLM_RS_GPU_SAMPLER=1`) against the CPU sampler on the same
//! random logits rows and the same uniform draws. Run by scripts/gpu-check.sh; needs a GPU.
//!
//! For every row and setting the CPU sampler samples once, and a second sampler with the same
//! seed hands the GPU its pre-temperature row and the uniform number the CPU draw consumed.
//! Checked: greedy tokens are equal; raw logprobs (the sampled token's and the top 5) agree to
//! 1e-3; with temperature and min-p only (both samplers walk the vocabulary in id order) the
//! tokens are equal except where a draw falls within rounding of a boundary (at most 1%); with
//! top-k or top-p the GPU's token is always one the CPU's filters kept (the CPU walks its
//! candidates in another order, so equal draws need not give equal tokens); and penalties
//! applied by the GPU kernel give the same tokens as the CPU's penalised rows.

use std::process::ExitCode;

use engine::sampling::{LogprobsMode, SamplingParams, SequenceSampler};
use kernels::cuda::{GpuDevice, GpuSampleRow};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

const VOCAB: usize = 32_000;
const ROWS: usize = 200;
const TOP: usize = 5;

struct Setting {
    name: &'static str,
    temperature: f32,
    top_k: i32,
    top_p: f32,
    min_p: f32,
    penalties: bool,
}

const SETTINGS: [Setting; 7] = [
    Setting {
        name: "greedy",
        temperature: 0.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        penalties: false,
    },
    Setting {
        name: "temperature 0.7",
        temperature: 0.7,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        penalties: false,
    },
    Setting {
        name: "min_p 0.1",
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.1,
        penalties: false,
    },
    Setting {
        name: "top_k 50",
        temperature: 1.0,
        top_k: 50,
        top_p: 1.0,
        min_p: 0.0,
        penalties: false,
    },
    Setting {
        name: "top_p 0.9",
        temperature: 0.8,
        top_k: 0,
        top_p: 0.9,
        min_p: 0.0,
        penalties: false,
    },
    Setting {
        name: "min_p+top_k+top_p",
        temperature: 1.0,
        top_k: 40,
        top_p: 0.8,
        min_p: 0.05,
        penalties: false,
    },
    Setting {
        name: "penalties",
        temperature: 0.9,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        penalties: true,
    },
];

fn params(s: &Setting, seed: u64, logprobs: usize) -> SamplingParams {
    SamplingParams {
        temperature: s.temperature,
        top_k: s.top_k,
        top_p: s.top_p,
        min_p: s.min_p,
        seed: Some(seed),
        logprobs: Some(logprobs),
        repetition_penalty: if s.penalties { 1.3 } else { 1.0 },
        presence_penalty: if s.penalties { 0.5 } else { 0.0 },
        frequency_penalty: if s.penalties { 0.4 } else { 0.0 },
        ..Default::default()
    }
}

/// A peaked random row (std 2.5, like a trained model's logits); every tenth row has a band of
/// masked (-inf) entries, as allowed ids or bad words leave it.
fn row(rng: &mut impl Rng, i: usize) -> Vec<f32> {
    let normal = Normal::new(0.0f32, 2.5).expect("valid normal");
    let mut v: Vec<f32> = (0..VOCAB).map(|_| normal.sample(rng)).collect();
    if i.is_multiple_of(10) {
        for x in &mut v[100..VOCAB / 2] {
            *x = f32::NEG_INFINITY;
        }
    }
    v
}

fn main() -> ExitCode {
    let out_path = std::env::args().nth(1);
    let cache = engine::paths::cache_root().join("kernels");
    let dev = match GpuDevice::open(0, Some(&cache)) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("gpu-sampler-check: no GPU: {e}");
            return ExitCode::from(2);
        }
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let rows: Vec<Vec<f32>> = (0..ROWS).map(|i| row(&mut rng, i)).collect();
    // Prompt and generated tokens for the penalties (ids both seen and repeated).
    let prompt: Vec<u32> = (0..64).map(|i| (i * 37) % VOCAB as u32).collect();
    let generated: Vec<u32> = (0..48).map(|i| (i * 53) % 200).collect();
    let mut report = Vec::new();
    let mut ok = true;
    for s in &SETTINGS {
        let (mut equal, mut outside, mut max_lp_err, mut penalty_kernel_equal) = (0, 0, 0.0f32, 0);
        for (i, r) in rows.iter().enumerate() {
            let gen: &[u32] = if s.penalties { &generated } else { &[] };
            let p = params(s, i as u64, TOP);
            let cpu = SequenceSampler::new(&p, &prompt, 0, Vec::new(), None).sample(
                r,
                gen,
                LogprobsMode::RawLogprobs,
            );
            let req = SequenceSampler::new(&p, &prompt, 0, Vec::new(), None)
                .gpu_request(r, gen, LogprobsMode::RawLogprobs)
                .expect("raw logprobs are the GPU path's mode");
            let settings = req.kernel_row();
            let gpu = match dev.sample_rows_from_host(
                r,
                req.processed.as_deref(),
                VOCAB,
                std::slice::from_ref(&settings),
                TOP,
            ) {
                Ok(mut v) => v.remove(0),
                Err(e) => {
                    eprintln!("{}: GPU sampling failed: {e}", s.name);
                    return ExitCode::FAILURE;
                }
            };
            equal += usize::from(gpu.token == cpu.token);
            max_lp_err = max_lp_err.max((gpu.logprob - cpu.logprob).abs());
            for ((gi, gv), (ci, cv)) in gpu.top.iter().zip(&cpu.top_logprobs) {
                max_lp_err = max_lp_err.max((gv - cv).abs());
                if gi != ci && (gv - cv).abs() > 1e-4 {
                    max_lp_err = f32::INFINITY;
                }
            }
            // The CPU's survivors: processed logprobs list every token the filters kept.
            let all = params(s, i as u64, VOCAB);
            let kept = SequenceSampler::new(&all, &prompt, 0, Vec::new(), None).sample(
                r,
                gen,
                LogprobsMode::ProcessedLogprobs,
            );
            if !kept
                .top_logprobs
                .iter()
                .any(|&(t, v)| t == gpu.token && v.is_finite())
                && s.temperature > 0.0
            {
                outside += 1;
            }
            if s.penalties {
                // The same draw with the penalties applied by the GPU kernel to the raw row.
                let mut history: Vec<(u32, u32)> = prompt.iter().map(|&t| (t, 0)).collect();
                for &t in gen {
                    match history.iter_mut().find(|h| h.0 == t) {
                        Some(h) => h.1 += 1,
                        None => history.push((t, 1)),
                    }
                }
                let on_gpu = GpuSampleRow {
                    repetition_penalty: p.repetition_penalty,
                    presence_penalty: p.presence_penalty,
                    frequency_penalty: p.frequency_penalty,
                    history,
                    ..settings
                };
                if let Ok(v) = dev.sample_rows_from_host(r, None, VOCAB, &[on_gpu], 0) {
                    penalty_kernel_equal += usize::from(v[0].token == gpu.token);
                }
            }
        }
        let greedy = s.temperature == 0.0;
        let id_order = s.top_k == 0 && s.top_p >= 1.0;
        let pass = max_lp_err <= 1e-3
            && outside == 0
            && (!greedy || equal == ROWS)
            && (!id_order || equal * 100 >= ROWS * 99)
            && (!s.penalties || penalty_kernel_equal * 100 >= ROWS * 99);
        ok &= pass;
        println!(
            "{:20} tokens equal {equal:3}/{ROWS}  outside CPU filters {outside}  max |dlogprob| {max_lp_err:.2e}{}  {}",
            s.name,
            if s.penalties { format!("  GPU penalties equal {penalty_kernel_equal}/{ROWS}") } else { String::new() },
            if pass { "ok" } else { "FAIL" }
        );
        report.push(serde_json::json!({
            "setting": s.name, "rows": ROWS, "tokens_equal": equal, "outside_cpu_filters": outside,
            "max_abs_logprob_err": max_lp_err, "gpu_penalties_equal": penalty_kernel_equal, "ok": pass,
        }));
    }
    if let Some(path) = out_path {
        let json = serde_json::json!({"ok": ok, "settings": report});
        if let Err(e) = std::fs::write(&path, json.to_string()) {
            eprintln!("writing {path}: {e}");
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
