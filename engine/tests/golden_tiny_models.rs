//! The forward pass against transformers on tiny random-weight models, in
//! `tests/fixtures/tiny/<case>/` (made by `scripts/make-tiny-models.py`; see its docstring).
//!
//! They cover what the GGUF golden tests (`golden_models.rs`) cannot: the Qwen3 architecture
//! (per-head RMSNorm on q and k, head_dim × heads ≠ hidden_size) and the rope_scaling variants
//! linear, dynamic, llama3 and yarn. Each folder is a complete Hugging Face checkpoint
//! (config.json as transformers saved it, float32 model.safetensors, tokenizer.json) loaded
//! through our ordinary loader; `expected.json` holds transformers' float32 logprobs for a
//! 40-token input at every position and a 16-token greedy continuation.
//!
//! The architecture cases (`mistral-sliding`, `gemma2`, `gemma3`, `phi3`, `mixtral`,
//! `qwen3-moe`) each exercise what sets the family apart (see each test's comment), with
//! `sensitivity` entries showing the tolerance is far below what switching it off moves.
//!
//! `llama-dynamic-rope`: transformers' dynamic NTK rescales the base from the current sequence
//! length; our engine (like vLLM) uses the static form with max_len = original × factor. The
//! expected values of that case were computed by transformers with its `inv_freq` replaced by
//! the static formula (see the case's `notes`), so this test checks the static form.

use std::path::{Path, PathBuf};

use engine::kv_cache::KvCache;
use engine::loader::{self, LoadOptions};
use engine::model::{CausalLm, SequenceInput};
use serde_json::Value;

/// Largest allowed |our logprob − transformers' logprob|.
///
/// Both sides compute in float32 from the same float32 weights; only the order of the float32
/// reductions differs (matmul blocking, softmax, attention), and the models are 2 layers deep
/// with logits of magnitude below ~30, so the expected noise is a few ulp of the logits. The
/// stored values are rounded to 7 significant digits (≤ 5e-6 at |logprob| < 100). Measured:
/// max |Δ| 6e-6 to 1.9e-5 per case (printed by each test), so 1e-4 leaves a 5x margin, while the
/// features under test move logprobs by 2.7 to 20 (the `sensitivity` entries of each
/// expected.json): a wrong RoPE frequency, a missing YaRN attention factor (forcing it to 1
/// gives |Δ| 7.8e-2) or a misapplied q/k norm cannot hide under it.
const LOGPROB_TOL: f64 = 1e-4;

const BLOCK_SIZE: usize = 16;

fn fixture_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tiny")
        .join(case)
}

fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let z: f64 = logits.iter().map(|l| (*l as f64 - max).exp()).sum();
    let lz = z.ln() + max;
    logits.iter().map(|l| *l as f64 - lz).collect()
}

fn argmax(logits: &[f32]) -> u32 {
    // Ties go to the lowest id, as in the reference (torch.argmax).
    let mut best = 0;
    for (i, v) in logits.iter().enumerate() {
        if *v > logits[best] {
            best = i;
        }
    }
    best as u32
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn load(dir: &Path) -> CausalLm {
    // 64 positions cover the 40-token input plus 16 generated tokens. The dynamic-rope case
    // declares max_position_embeddings 16 (the original length that dynamic NTK scales from),
    // so going past it must be allowed explicitly, as `VLLM_ALLOW_LONG_MAX_MODEL_LEN` does.
    let opts = LoadOptions {
        // float32 reference data: the CPU backend, whatever `auto` would pick.
        device: engine::device::Device::Cpu,
        model: dir.to_path_buf(),
        max_model_len: Some(64),
        allow_long_max_model_len: true,
        ..Default::default()
    };
    loader::load(&opts, &|_, _| {})
        .unwrap_or_else(|e| panic!("loading {}: {e}", dir.display()))
        .model
}

fn check(case: &str) {
    let dir = fixture_dir(case);
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let started = std::time::Instant::now();
    let model = load(&dir);
    // For the record (the closing note of the architectures issue): load time, weight bytes
    // and the process's resident set after loading (Linux).
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_else(|| "n/a".into());
    eprintln!(
        "{case}: loaded in {:.1} ms, {} weight bytes, RSS {rss}",
        started.elapsed().as_secs_f64() * 1e3,
        model.weight_bytes()
    );
    assert_eq!(
        model.config().architecture.hf_name(),
        expected["architecture"].as_str().unwrap(),
        "{case}"
    );

    let input = ids(&expected["input_ids"]);
    let max_new = expected["greedy"]["max_new_tokens"].as_u64().unwrap() as usize;
    let want_greedy = ids(&expected["greedy"]["token_ids"]);
    let total = input.len() + max_new;
    let table: Vec<u32> = (0..total.div_ceil(BLOCK_SIZE) as u32).collect();
    let mut kv = KvCache::new(
        model.config().num_hidden_layers,
        table.len(),
        model.kv_layout(BLOCK_SIZE),
    );

    // 1. Logprobs at every position of the input, in one prefill call.
    let prefill = [SequenceInput {
        tokens: &input,
        start_pos: 0,
        block_table: &table,
        all_logits: true,
    }];
    let logits = model.forward(&prefill, &mut kv).unwrap();
    let vocab = logits.vocab_size;
    let rows = logits.sequence(0);
    assert_eq!(
        rows.len(),
        input.len() * vocab,
        "{case}: one row of logits per input token"
    );
    let positions = expected["positions"].as_array().unwrap();
    assert_eq!(positions.len(), input.len(), "{case}");
    let mut max_err = 0.0f64;
    let mut checked = 0;
    for entry in positions {
        let i = entry["i"].as_u64().unwrap() as usize;
        let lp = log_softmax(&rows[i * vocab..(i + 1) * vocab]);
        let pairs = entry["top5"]
            .as_array()
            .unwrap()
            .iter()
            .chain(entry["fixed"].as_array().unwrap());
        for pair in pairs {
            let id = pair[0].as_u64().unwrap() as usize;
            let want = pair[1].as_f64().unwrap();
            let err = (lp[id] - want).abs();
            max_err = max_err.max(err);
            checked += 1;
            assert!(
                err <= LOGPROB_TOL,
                "{case} position {i} token {id}: ours {} vs transformers {want} (|Δ| {err:.2e})",
                lp[id]
            );
        }
        // Our top-1 must be the reference top-1 wherever the reference has a clear winner.
        let top = entry["top5"].as_array().unwrap();
        if top[0][1].as_f64().unwrap() - top[1][1].as_f64().unwrap() > 1e-3 {
            let ours = argmax(&rows[i * vocab..(i + 1) * vocab]);
            assert_eq!(
                ours as u64,
                top[0][0].as_u64().unwrap(),
                "{case} position {i}: top-1 differs"
            );
        }
    }
    eprintln!("{case}: {checked} logprobs, max |Δ| = {max_err:.2e}");

    // 2. Greedy continuation, one token at a time through the KV cache.
    let mut generated = vec![argmax(&rows[(input.len() - 1) * vocab..])];
    while generated.len() < max_new {
        let last = *generated.last().unwrap();
        let step = [SequenceInput {
            tokens: std::slice::from_ref(&last),
            start_pos: input.len() + generated.len() - 1,
            block_table: &table,
            all_logits: false,
        }];
        let out = model.forward(&step, &mut kv).unwrap();
        generated.push(argmax(out.last(0)));
    }
    if generated != want_greedy {
        let step = generated
            .iter()
            .zip(&want_greedy)
            .position(|(a, b)| a != b)
            .unwrap();
        let margin = expected["greedy"]["top1_logit_margins"][step]
            .as_f64()
            .unwrap_or(f64::NAN);
        panic!("{case}: greedy diverges at step {step} (reference top-1 margin {margin}):\n ours {generated:?}\n want {want_greedy:?}");
    }
}

#[test]
fn qwen3_matches_transformers() {
    check("qwen3");
}

#[test]
fn llama3_rope_scaling_matches_transformers() {
    check("llama-llama3-rope");
}

#[test]
fn linear_rope_scaling_matches_transformers() {
    check("llama-linear-rope");
}

#[test]
fn yarn_rope_scaling_matches_transformers() {
    check("qwen2-yarn-rope");
}

/// Static dynamic-NTK (vLLM's form); see the module docs.
#[test]
fn dynamic_rope_scaling_matches_static_ntk_reference() {
    check("llama-dynamic-rope");
}

/// Sliding window 8 (shorter than the 40-token input) on every layer.
#[test]
fn mistral_sliding_window_matches_transformers() {
    check("mistral-sliding");
}

/// GELU-tanh, (1 + w) norms, sandwich norms, scaled embeddings, both soft-caps, one sliding
/// and one global layer.
#[test]
fn gemma2_matches_transformers() {
    check("gemma2");
}

/// Gemma 2's layout plus q/k norms, the local RoPE base and linear scaling on global layers.
#[test]
fn gemma3_matches_transformers() {
    check("gemma3");
}

/// Fused qkv_proj and gate_up_proj, sliding window 12.
#[test]
fn phi3_matches_transformers() {
    check("phi3");
}

/// 4 experts, top-2 routing renormalised, sliding window 16.
#[test]
fn mixtral_matches_transformers() {
    check("mixtral");
}

/// 4 experts, top-2 without renormalisation (`norm_topk_prob: false`), one dense layer.
#[test]
fn qwen3_moe_matches_transformers() {
    check("qwen3-moe");
}

/// `--disable-sliding-window` (vLLM's meaning): full attention everywhere with the context
/// capped at the window, so the first 8 positions still match transformers' windowed model,
/// and a longer `--max-model-len` is refused.
#[test]
fn disable_sliding_window_caps_the_context_at_the_window() {
    let dir = fixture_dir("mistral-sliding");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let mut opts = LoadOptions {
        device: engine::device::Device::Cpu,
        model: dir.clone(),
        disable_sliding_window: true,
        ..Default::default()
    };
    let loaded = loader::load(&opts, &|_, _| {}).unwrap();
    assert_eq!(loaded.max_model_len, 8);
    let model = loaded.model;
    let input = &ids(&expected["input_ids"])[..8];
    let table = [0u32];
    let mut kv = KvCache::new(model.config().num_hidden_layers, 1, model.kv_layout(8));
    let seqs = [SequenceInput {
        tokens: input,
        start_pos: 0,
        block_table: &table,
        all_logits: true,
    }];
    let logits = model.forward(&seqs, &mut kv).unwrap();
    let vocab = logits.vocab_size;
    for entry in &expected["positions"].as_array().unwrap()[..8] {
        let i = entry["i"].as_u64().unwrap() as usize;
        let lp = log_softmax(&logits.sequence(0)[i * vocab..(i + 1) * vocab]);
        for pair in entry["top5"].as_array().unwrap() {
            let (id, want) = (
                pair[0].as_u64().unwrap() as usize,
                pair[1].as_f64().unwrap(),
            );
            assert!(
                (lp[id] - want).abs() <= LOGPROB_TOL,
                "position {i} token {id}"
            );
        }
    }
    opts.max_model_len = Some(9);
    let e = loader::load(&opts, &|_, _| {}).err().unwrap().to_string();
    assert!(e.contains("exceeds the model's maximum of 8"), "{e}");
}

/// The CUDA backend runs the Llama family only: the other architectures are refused at
/// start-up with `--device cuda`, naming the architecture (before any GPU is touched).
#[test]
fn cuda_refuses_architectures_it_does_not_run() {
    for case in ["gemma2", "mixtral"] {
        let opts = LoadOptions {
            device: engine::device::Device::Cuda,
            model: fixture_dir(case),
            ..Default::default()
        };
        let e = loader::load(&opts, &|_, _| {}).err().unwrap().to_string();
        let arch = if case == "gemma2" {
            "Gemma2ForCausalLM"
        } else {
            "MixtralForCausalLM"
        };
        assert!(e.contains(arch) && e.contains("--device cuda"), "{e}");
    }
}

/// Every folder under fixtures/tiny has a test above, so a new case cannot go unchecked.
#[test]
fn every_tiny_fixture_is_tested() {
    let mut found: Vec<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
    found.sort();
    assert_eq!(
        found,
        [
            "gemma2",
            "gemma3",
            "llama-dynamic-rope",
            "llama-linear-rope",
            "llama-llama3-rope",
            "mistral-sliding",
            "mixtral",
            "phi3",
            "qwen2-yarn-rope",
            "qwen3",
            "qwen3-moe",
        ]
    );
}
