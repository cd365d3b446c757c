//! Batch invariance: a sequence's logits are bitwise identical whether it runs alone or beside
//! other sequences, at any batch size. The CPU kernels reduce every output element in an order
//! that does not depend on the batch (kernels/src/cpu/dot.rs); this checks it end to end on the
//! default model with the reference prompts, for prefill and for decode steps.

use std::path::Path;

use engine::kv_cache::KvCache;
use engine::loader::{self, LoadOptions};
use engine::model::{CausalLm, SequenceInput};
use engine::paths;

const BLOCK_SIZE: usize = 16;

fn prompts() -> Vec<Vec<u32>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/reference/smollm2-135m-q4_1.dev.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p["prompt_token_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        })
        .collect()
}

/// Filler sequences of varied lengths and contents, so batches mix unrelated work (short ones
/// in the big batch, which is there for the decode step).
fn filler(i: usize, vocab: usize, max_len: usize) -> Vec<u32> {
    let len = 1 + (i * 7) % max_len;
    (0..len)
        .map(|j| ((i * 7919 + j * 104_729) % (vocab - 1)) as u32 + 1)
        .collect()
}

struct Run {
    /// Prompt logits (every position) of each sequence.
    prefill: Vec<Vec<f32>>,
    /// Logits of one decode step after the prompt.
    decode: Vec<Vec<f32>>,
}

/// Runs `seqs` as one batched prefill, then one batched decode step feeding token `next[i]`.
fn run(model: &CausalLm, seqs: &[Vec<u32>], next: &[u32]) -> Run {
    let blocks_each: Vec<usize> = seqs
        .iter()
        .map(|s| (s.len() + 1).div_ceil(BLOCK_SIZE))
        .collect();
    let mut kv = KvCache::new(
        model.config().num_hidden_layers,
        blocks_each.iter().sum::<usize>() + 1,
        model.kv_layout(BLOCK_SIZE),
    );
    let mut tables = Vec::new();
    let mut next_block = 0u32;
    for n in &blocks_each {
        tables.push((next_block..next_block + *n as u32).collect::<Vec<u32>>());
        next_block += *n as u32;
    }
    let inputs: Vec<SequenceInput> = seqs
        .iter()
        .zip(&tables)
        .map(|(s, t)| SequenceInput {
            tokens: s,
            start_pos: 0,
            block_table: t,
            all_logits: true,
        })
        .collect();
    let out = model.forward(&inputs, &mut kv).unwrap();
    let prefill = (0..seqs.len()).map(|i| out.sequence(i).to_vec()).collect();
    let step: Vec<SequenceInput> = seqs
        .iter()
        .zip(&tables)
        .zip(next)
        .map(|((s, t), tok)| SequenceInput {
            tokens: std::slice::from_ref(tok),
            start_pos: s.len(),
            block_table: t,
            all_logits: false,
        })
        .collect();
    let out = model.forward(&step, &mut kv).unwrap();
    let decode = (0..seqs.len()).map(|i| out.last(i).to_vec()).collect();
    Run { prefill, decode }
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[test]
fn logits_do_not_depend_on_the_batch() {
    let Some(path) = paths::test_model(paths::DEFAULT_MODEL_FILE) else {
        return;
    };
    for dtype in [loader::ModelDtype::Auto, loader::ModelDtype::Float32] {
        let opts = LoadOptions {
            // float32 reference data: the CPU backend, whatever `auto` would pick.
            device: engine::device::Device::Cpu,
            model: path.clone(),
            dtype,
            max_model_len: Some(512),
            ..Default::default()
        };
        let model = loader::load(&opts, &|_, _| {}).unwrap().model;
        let vocab = model.config().vocab_size;
        let refs = prompts();
        let next: Vec<u32> = (0..refs.len()).map(|i| 100 + i as u32 * 13).collect();
        let alone: Vec<Run> = refs
            .iter()
            .zip(&next)
            .map(|(p, n)| run(&model, std::slice::from_ref(p), &[*n]))
            .collect();

        // Batches of 2, 7 and 256 sequences, the reference prompts at different places.
        for (size, offset) in [(2usize, 1usize), (7, 3), (256, 100)] {
            let max_len = if size > 16 { 4 } else { 31 };
            let mut seqs: Vec<Vec<u32>> = (0..size)
                .map(|i| filler(i + size, vocab, max_len))
                .collect();
            let mut toks: Vec<u32> = (0..size).map(|i| 7 + i as u32).collect();
            let mut at = Vec::new();
            for (r, p) in refs.iter().enumerate().take(size) {
                let pos = (offset + r * 37) % size;
                if at.contains(&pos) {
                    continue;
                }
                seqs[pos] = p.clone();
                toks[pos] = next[r];
                at.push(pos);
            }
            let batched = run(&model, &seqs, &toks);
            for (r, &pos) in at.iter().enumerate() {
                let r = refs.iter().position(|p| *p == seqs[pos]).unwrap_or(r);
                assert!(
                    same_bits(&alone[r].prefill[0], &batched.prefill[pos]),
                    "{dtype:?}: prompt {r} prefill differs in a batch of {size}"
                );
                assert!(
                    same_bits(&alone[r].decode[0], &batched.decode[pos]),
                    "{dtype:?}: prompt {r} decode step differs in a batch of {size}"
                );
            }
        }
    }
}
