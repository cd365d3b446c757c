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
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/reference")
        .join(name)
}

fn read_reference(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
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

fn load(path: &Path, dtype: loader::ModelDtype) -> CausalLm {
    let opts = LoadOptions {
        // float32 reference data: the CPU backend, whatever `auto` would pick.
        device: engine::device::Device::Cpu,
        model: path.to_path_buf(),
        max_model_len: Some(2048),
        dtype,
        ..Default::default()
    };
    loader::load(&opts, &|_, _| {}).unwrap().model
}

/// `dtype` Auto keeps the GGUF blocks as stored (decoded as they are used); Float32 is the
/// reference mode that dequantizes at load. Both must match transformers.
fn check_model(model_file: &str, reference_file: &str, dtype: loader::ModelDtype) {
    let Some(path) = paths::test_model(model_file) else {
        return;
    };
    check(
        &load(&path, dtype),
        &format!("{model_file} ({dtype:?})"),
        reference_file,
    );
}

fn check(model: &CausalLm, model_file: &str, reference_file: &str) {
    let reference = read_reference(reference_file);
    let prompts = reference["prompts"].as_array().unwrap();
    let eos = reference["generator"]["greedy"]["stop_token_ids"]
        .as_array()
        .unwrap()[0]
        .as_u64()
        .unwrap() as u32;
    let n = prompts.len();
    let prompt_ids: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| ids(&p["prompt_token_ids"]))
        .collect();

    let total: usize = prompt_ids.iter().map(|p| p.len() + 40).sum();
    let mut kv = KvCache::new(
        model.config().num_hidden_layers,
        total / BLOCK_SIZE + n + 8,
        model.kv_layout(BLOCK_SIZE),
    );
    let mut blocks = Blocks {
        tables: vec![Vec::new(); n],
        next: 0,
    };
    for (s, p) in prompt_ids.iter().enumerate() {
        blocks.ensure(s, p.len());
    }

    // 1. Prompt logprobs at every position, all prompts in one forward call.
    let inputs: Vec<SequenceInput> = (0..n)
        .map(|s| SequenceInput {
            tokens: &prompt_ids[s],
            start_pos: 0,
            block_table: &blocks.tables[s],
            all_logits: true,
        })
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
                assert!(
                    err <= LOGPROB_TOL,
                    "{} {} position {i}: {what} token {id}: ours {} vs reference {want}",
                    model_file,
                    p["id"],
                    lp[id]
                );
            };
            check(tok, entry["logprob"].as_f64().unwrap(), "prompt");
            for pair in entry["top5"].as_array().unwrap() {
                check(
                    pair[0].as_u64().unwrap() as usize,
                    pair[1].as_f64().unwrap(),
                    "top5",
                );
            }
        }
    }
    eprintln!("{model_file}: max |Δ logprob| over all prompt positions = {max_err:.2e}");

    // 2. Greedy continuations, decoded as one batch from the prompt's last logits.
    let mut generated: Vec<Vec<u32>> = (0..n)
        .map(|s| {
            vec![argmax(
                &logits.sequence(s)[(prompt_ids[s].len() - 1) * vocab..],
            )]
        })
        .collect();
    let max_new = reference["generator"]["greedy"]["max_new_tokens"]
        .as_u64()
        .unwrap() as usize;
    loop {
        let active: Vec<usize> = (0..n)
            .filter(|&s| generated[s].len() < max_new && *generated[s].last().unwrap() != eos)
            .collect();
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
            let step = generated[s]
                .iter()
                .zip(&want)
                .position(|(a, b)| a != b)
                .unwrap_or(want.len().min(generated[s].len()));
            let margin = p["greedy_top5"][step]["top1_margin"]
                .as_f64()
                .unwrap_or(f64::NAN);
            panic!(
                "{model_file} {}: greedy diverges at step {step} (reference top-1 margin there {margin}):\n ours {:?}\n want {:?}",
                p["id"], generated[s], want
            );
        }
    }
}

#[test]
fn smollm2_matches_transformers() {
    check_model(
        paths::DEFAULT_MODEL_FILE,
        "smollm2-135m-q4_1.dev.json",
        loader::ModelDtype::Auto,
    );
}

#[test]
fn qwen25_coder_matches_transformers() {
    check_model(
        paths::QWEN_TEST_MODEL_FILE,
        "qwen2.5-coder-0.5b.dev.json",
        loader::ModelDtype::Auto,
    );
}

#[test]
fn smollm2_float32_matches_transformers() {
    check_model(
        paths::DEFAULT_MODEL_FILE,
        "smollm2-135m-q4_1.dev.json",
        loader::ModelDtype::Float32,
    );
}

#[test]
fn qwen25_coder_float32_matches_transformers() {
    check_model(
        paths::QWEN_TEST_MODEL_FILE,
        "qwen2.5-coder-0.5b.dev.json",
        loader::ModelDtype::Float32,
    );
}

/// Writes a GGUF model as a Hugging Face folder (config.json, two safetensors shards with an
/// index, tokenizer.json, tokenizer_config.json), through our own loaders.
fn export_hf_folder(gguf_path: &Path, dir: &Path) {
    use engine::gguf::GgufFile;
    use engine::model::WeightSource;
    use engine::tokenizer::Tokenizer;
    use safetensors::tensor::{Dtype, TensorView};

    let file = std::sync::Arc::new(GgufFile::open(gguf_path).unwrap());
    let config = loader::config_from_gguf(&file).unwrap();
    let weights = loader::GgufWeights::new(file.clone(), &config);
    let mut names = vec![
        "model.embed_tokens.weight".to_string(),
        "model.norm.weight".to_string(),
    ];
    if !config.tie_word_embeddings {
        names.push("lm_head.weight".into());
    }
    for i in 0..config.num_hidden_layers {
        for f in [
            "input_layernorm.weight",
            "post_attention_layernorm.weight",
            "self_attn.q_proj.weight",
            "self_attn.k_proj.weight",
            "self_attn.v_proj.weight",
            "self_attn.o_proj.weight",
            "mlp.gate_proj.weight",
            "mlp.up_proj.weight",
            "mlp.down_proj.weight",
            "self_attn.q_proj.bias",
            "self_attn.k_proj.bias",
            "self_attn.v_proj.bias",
        ] {
            names.push(format!("model.layers.{i}.{f}"));
        }
    }
    // (name, shape, little-endian f32 bytes) per shard.
    type Shard = Vec<(String, Vec<usize>, Vec<u8>)>;
    let mut shards: [Shard; 2] = [Vec::new(), Vec::new()];
    for (k, name) in names.iter().enumerate() {
        let Some((shape, data)) = weights.load(name).unwrap() else {
            continue;
        };
        let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        shards[k % 2].push((name.clone(), shape, bytes));
    }
    let mut weight_map = serde_json::Map::new();
    for (si, shard) in shards.iter().enumerate() {
        let fname = format!("model-{:05}-of-00002.safetensors", si + 1);
        let views: Vec<(String, TensorView)> = shard
            .iter()
            .map(|(n, shape, b)| {
                (
                    n.clone(),
                    TensorView::new(Dtype::F32, shape.clone(), b).unwrap(),
                )
            })
            .collect();
        for (n, _, _) in shard {
            weight_map.insert(n.clone(), fname.clone().into());
        }
        safetensors::serialize_to_file(views, None, &dir.join(&fname)).unwrap();
    }
    let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("config.json"), config.to_hf_json().to_string()).unwrap();
    let tok = Tokenizer::from_gguf(&file).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tok.to_hf_json().unwrap()).unwrap();
    std::fs::write(
        dir.join("tokenizer_config.json"),
        tok.to_hf_config_json().unwrap(),
    )
    .unwrap();
}

/// The Hugging Face folder path (config.json + sharded safetensors + tokenizer.json) computes
/// the same model: the same golden checks pass on the folder exported from the GGUF.
#[test]
fn smollm2_as_safetensors_folder_matches_transformers() {
    let Some(path) = paths::test_model(paths::DEFAULT_MODEL_FILE) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    export_hf_folder(&path, dir.path());
    let loaded = loader::load(
        &LoadOptions {
            device: engine::device::Device::Cpu,
            model: dir.path().to_path_buf(),
            max_model_len: Some(2048),
            ..Default::default()
        },
        &|_, _| {},
    )
    .unwrap();
    let reference = read_reference("smollm2-135m-q4_1.dev.json");
    let first = &reference["prompts"][0];
    assert_eq!(
        loaded
            .tokenizer
            .encode(first["prompt"].as_str().unwrap(), true)
            .unwrap(),
        ids(&first["prompt_token_ids"])
    );
    check(
        &loaded.model,
        "SmolLM2 as safetensors",
        "smollm2-135m-q4_1.dev.json",
    );
}

/// `--load-format dummy` builds a runnable model of the config's shapes without weights files.
#[test]
fn dummy_weights_run_a_forward_pass() {
    let Some(path) = paths::test_model(paths::DEFAULT_MODEL_FILE) else {
        return;
    };
    let opts = LoadOptions {
        device: engine::device::Device::Cpu,
        model: path,
        load_format: loader::LoadFormat::Dummy,
        max_model_len: Some(64),
        ..Default::default()
    };
    let model = loader::load(&opts, &|_, _| {}).unwrap().model;
    let mut kv = KvCache::new(
        model.config().num_hidden_layers,
        4,
        model.kv_layout(BLOCK_SIZE),
    );
    let out = model
        .forward(
            &[SequenceInput {
                tokens: &[1, 2, 3],
                start_pos: 0,
                block_table: &[0],
                all_logits: true,
            }],
            &mut kv,
        )
        .unwrap();
    assert_eq!(out.data.len(), 3 * model.config().vocab_size);
    assert!(out.data.iter().all(|v| v.is_finite()));
}
