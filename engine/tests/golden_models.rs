//! The forward pass against golden data from Hugging Face transformers (float32, from the same
//! GGUF files), in `tests/fixtures/reference/` (see its README for how it was made).
//!
//! Every prompt of a model runs in ONE batched forward call (sequences of different lengths,
//! each with its own block table), and the greedy continuations decode as one batch too, so
//! these tests also prove that batching and paged K/V do not change the numbers.

use std::path::{Path, PathBuf};

use engine::kv_cache::KvCache;
use engine::loader::{self, LoadOptions};
use engine::model::{CausalLm, SequenceInput};
use engine::paths;
use serde_json::Value;

/// Largest allowed |our logprob − reference logprob|.
///
/// Both sides compute in float32 from identical dequantized weights; only the order of the
/// float32 reductions (matmul blocking, softmax, attention) differs. The reference README
/// measured two independent float32 implementations (transformers vs llama.cpp-on-F32) at
/// 2.8e-5 / 3.7e-5 max difference; summation-order noise over 24–30 layers grows roughly with
/// the logit magnitude, so 1e-3 leaves a 25x margin while still catching any real defect (a
/// wrong RoPE pair, a missing bias or a bad dequantization shifts logprobs by 1e-1 or more).
const LOGPROB_TOL: f64 = 1e-3;

const BLOCK_SIZE: usize = 16;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference").join(name)
}

fn read_reference(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let z: f64 = logits.iter().map(|l| (*l as f64 - max).exp()).sum();
    let lz = z.ln() + max;
    logits.iter().map(|l| *l as f64 - lz).collect()
}

fn argmax(logits: &[f32]) -> u32 {
    // Ties go to the lowest id, as in the reference.
    let mut best = 0;
    for (i, v) in logits.iter().enumerate() {
        if *v > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Hands out physical blocks in the order sequences need them, so tables interleave.
struct Blocks {
    tables: Vec<Vec<u32>>,
    next: u32,
}

impl Blocks {
    fn ensure(&mut self, seq: usize, len: usize) {
        while self.tables[seq].len() * BLOCK_SIZE < len {
            self.tables[seq].push(self.next);
            self.next += 1;
        }
    }
}

fn load(file: &str) -> Option<CausalLm> {
    let path = paths::test_model(file)?;
    let opts = LoadOptions { model: path, max_model_len: Some(2048), ..Default::default() };
    let loaded = loader::load(&opts, &|_, _| {}).unwrap();
    Some(loaded.model)
}

fn check_model(model_file: &str, reference_file: &str) {
    let Some(model) = load(model_file) else { return };
    let reference = read_reference(reference_file);
    let prompts = reference["prompts"].as_array().unwrap();
    let eos = reference["generator"]["greedy"]["stop_token_ids"].as_array().unwrap()[0].as_u64().unwrap() as u32;
    let n = prompts.len();
    let prompt_ids: Vec<Vec<u32>> = prompts.iter().map(|p| ids(&p["prompt_token_ids"])).collect();

    let total: usize = prompt_ids.iter().map(|p| p.len() + 40).sum();
    let mut kv = KvCache::new(model.config().num_hidden_layers, total / BLOCK_SIZE + n + 8, model.kv_layout(BLOCK_SIZE));
    let mut blocks = Blocks { tables: vec![Vec::new(); n], next: 0 };
    for (s, p) in prompt_ids.iter().enumerate() {
        blocks.ensure(s, p.len());
    }

    // 1. Prompt logprobs at every position, all prompts in one forward call.
    let inputs: Vec<SequenceInput> = (0..n)
        .map(|s| SequenceInput { tokens: &prompt_ids[s], start_pos: 0, block_table: &blocks.tables[s], all_logits: true })
        .collect();
    let logits = model.forward(&inputs, &mut kv).unwrap();
    let vocab = logits.vocab_size;
    let mut max_err = 0.0f64;
    for (s, p) in prompts.iter().enumerate() {
        let rows = logits.sequence(s);
        for entry in p["prompt_logprobs_top5"].as_array().unwrap() {
            let i = entry["i"].as_u64().unwrap() as usize;
            let lp = log_softmax(&rows[(i - 1) * vocab..i * vocab]);
            let tok = entry["token_id"].as_u64().unwrap() as usize;
            let mut check = |id: usize, want: f64, what: &str| {
                let err = (lp[id] - want).abs();
                max_err = max_err.max(err);
                assert!(err <= LOGPROB_TOL, "{} {} position {i}: {what} token {id}: ours {} vs reference {want}", model_file, p["id"], lp[id]);
            };
            check(tok, entry["logprob"].as_f64().unwrap(), "prompt");
            for pair in entry["top5"].as_array().unwrap() {
                check(pair[0].as_u64().unwrap() as usize, pair[1].as_f64().unwrap(), "top5");
            }
        }
    }
    eprintln!("{model_file}: max |Δ logprob| over all prompt positions = {max_err:.2e}");

    // 2. Greedy continuations, decoded as one batch from the prompt's last logits.
    let mut generated: Vec<Vec<u32>> = (0..n).map(|s| vec![argmax(&logits.sequence(s)[(prompt_ids[s].len() - 1) * vocab..])]).collect();
    let max_new = reference["generator"]["greedy"]["max_new_tokens"].as_u64().unwrap() as usize;
    loop {
        let active: Vec<usize> = (0..n).filter(|&s| generated[s].len() < max_new && *generated[s].last().unwrap() != eos).collect();
        if active.is_empty() {
            break;
        }
        for &s in &active {
            blocks.ensure(s, prompt_ids[s].len() + generated[s].len());
        }
        let step: Vec<SequenceInput> = active
            .iter()
            .map(|&s| SequenceInput {
                tokens: std::slice::from_ref(generated[s].last().unwrap()),
                start_pos: prompt_ids[s].len() + generated[s].len() - 1,
                block_table: &blocks.tables[s],
                all_logits: false,
            })
            .collect();
        let out = model.forward(&step, &mut kv).unwrap();
        for (j, &s) in active.iter().enumerate() {
            generated[s].push(argmax(out.last(j)));
        }
    }
    for (s, p) in prompts.iter().enumerate() {
        let want = ids(&p["greedy_token_ids"]);
        if generated[s] != want {
            let step = generated[s].iter().zip(&want).position(|(a, b)| a != b).unwrap_or(want.len().min(generated[s].len()));
            let margin = p["greedy_top5"][step]["top1_margin"].as_f64().unwrap_or(f64::NAN);
            panic!(
                "{model_file} {}: greedy diverges at step {step} (reference top-1 margin there {margin}):\n ours {:?}\n want {:?}",
                p["id"], generated[s], want
            );
        }
    }
}

#[test]
fn smollm2_matches_transformers() {
    check_model(paths::DEFAULT_MODEL_FILE, "smollm2-135m-q4_1.dev.json");
}

#[test]
fn qwen25_coder_matches_transformers() {
    check_model(paths::QWEN_TEST_MODEL_FILE, "qwen2.5-coder-0.5b.dev.json");
}
