//! The pooling runner against references nobody here wrote:
//! - embeddings of both GGUF test models (last-token and mean pooling, L2-normalised) against
//!   transformers' float32 `last_hidden_state` (`scripts/make-pooling-reference.py`);
//! - tiny random `*ForSequenceClassification` checkpoints against transformers' `logits`
//!   (`scripts/make-tiny-poolers.py`).
//!
//! Prompts run batched, and with a small token budget so they are prefilled in chunks: the
//! pooled vectors must not depend on either.

use std::path::{Path, PathBuf};

use engine::llm_engine::{EngineConfig, LlmEngine};
use engine::loader::{self, LoadOptions};
use engine::paths;
use engine::pooling::offline::pool;
use engine::pooling::{PoolerConfig, PoolingKind, PoolingParams, PoolingSetup, PoolingType};
use serde_json::Value;

/// Cosine between our embedding and the reference: float32 on both sides from the same
/// dequantized weights; only reduction order differs (measured: >= 0.999999).
const MIN_COSINE: f64 = 0.9999;
/// Largest |ours - reference| per dimension of a unit vector.
const MAX_ABS: f64 = 2e-3;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn engine(
    model: PathBuf,
    kind: PoolingKind,
    pooling_type: PoolingType,
    budget: usize,
) -> LlmEngine {
    let loaded = loader::load(
        &LoadOptions {
            device: engine::device::Device::Cpu,
            model,
            max_model_len: Some(512),
            // The tiny classifiers know 128 positions; their prompts are far shorter.
            allow_long_max_model_len: true,
            ..Default::default()
        },
        &|_, _| {},
    )
    .unwrap();
    let mut cfg = EngineConfig::new(512);
    cfg.kv_cache_bytes = 256 << 20;
    cfg.scheduler.max_num_batched_tokens = budget;
    cfg.scheduler.enable_chunked_prefill = true;
    let mut pooler = PoolerConfig::default_for(kind);
    pooler.pooling_type = pooling_type;
    cfg.pooling = Some(PoolingSetup { kind, pooler });
    LlmEngine::new(loaded, cfg).unwrap()
}

fn check_embeddings(model_file: &str, reference: &str) {
    let Some(path) = paths::test_model(model_file) else {
        return;
    };
    let doc = read(&fixture(&format!("pooling/{reference}")));
    let cases = doc["cases"].as_array().unwrap();
    let prompts: Vec<Vec<u32>> = cases.iter().map(|c| ids(&c["token_ids"])).collect();
    for (kind, pt) in [("last", PoolingType::Last), ("mean", PoolingType::Mean)] {
        // 512 tokens: whole prompts in one batch; 7: every prompt prefilled in chunks.
        for budget in [512, 7] {
            let mut e = engine(path.clone(), PoolingKind::Embed, pt, budget);
            let got = pool(&mut e, prompts.clone(), &PoolingParams::default()).unwrap();
            for (c, v) in cases.iter().zip(&got) {
                let want = floats(&c[kind]["embedding"]);
                assert_eq!(v.len(), want.len());
                let dot: f64 = v.iter().zip(&want).map(|(a, b)| *a as f64 * b).sum();
                let na = v.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
                let nb = want.iter().map(|b| b * b).sum::<f64>().sqrt();
                let cos = dot / (na * nb);
                let max_abs = v
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (*a as f64 - b).abs())
                    .fold(0.0, f64::max);
                eprintln!("{model_file} {kind} budget {budget}: cosine {cos:.8}, max abs error {max_abs:.2e}");
                assert!(cos >= MIN_COSINE, "{kind}: cosine {cos} < {MIN_COSINE}");
                assert!(max_abs <= MAX_ABS, "{kind}: max abs error {max_abs}");
                assert!((na - 1.0).abs() < 1e-5, "normalised");
            }
        }
    }
}

#[test]
fn smollm2_embeddings_match_transformers() {
    check_embeddings(paths::DEFAULT_MODEL_FILE, "smollm2-135m-q4_1.json");
}

#[test]
fn qwen2_embeddings_match_transformers() {
    check_embeddings(
        "qwen2.5-coder-0.5b-instruct.gguf",
        "qwen2.5-coder-0.5b.json",
    );
}

#[test]
fn matryoshka_dimensions_cut_then_normalise() {
    let Some(path) = paths::test_model(paths::DEFAULT_MODEL_FILE) else {
        return;
    };
    let doc = read(&fixture("pooling/smollm2-135m-q4_1.json"));
    let case = &doc["cases"][0];
    let mut e = engine(path, PoolingKind::Embed, PoolingType::Last, 512);
    let raw = PoolingParams {
        normalize: Some(false),
        ..Default::default()
    };
    let full = pool(&mut e, vec![ids(&case["token_ids"])], &raw)
        .unwrap()
        .remove(0);
    let norm = full.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let want_norm = case["last"]["raw_norm"].as_f64().unwrap();
    assert!(
        (norm - want_norm).abs() / want_norm < 1e-4,
        "raw norm {norm} vs {want_norm}"
    );
    let cut = PoolingParams {
        dimensions: Some(64),
        ..Default::default()
    };
    let short = pool(&mut e, vec![ids(&case["token_ids"])], &cut)
        .unwrap()
        .remove(0);
    assert_eq!(short.len(), 64);
    let n64 = full[..64]
        .iter()
        .map(|x| (*x as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    for (s, f) in short.iter().zip(&full) {
        assert!((*s as f64 - *f as f64 / n64).abs() < 1e-5);
    }
}

fn softmax_or_sigmoid(l: &[f64]) -> Vec<f64> {
    if l.len() == 1 {
        return vec![1.0 / (1.0 + (-l[0]).exp())];
    }
    let m = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let z: f64 = l.iter().map(|x| (x - m).exp()).sum();
    l.iter().map(|x| (x - m).exp() / z).collect()
}

#[test]
fn tiny_sequence_classifiers_match_transformers_logits() {
    for name in ["qwen3-cls-1label", "qwen2-cls-3labels", "llama-cls-2labels"] {
        let dir = fixture(&format!("tiny-pooling/{name}"));
        let expected = read(&dir.join("expected.json"));
        let mut cases: Vec<(Vec<u32>, Vec<f64>)> = Vec::new();
        for c in expected["singles"]
            .as_array()
            .unwrap()
            .iter()
            .chain(expected["pairs"].as_array().unwrap())
        {
            cases.push((ids(&c["input_ids"]), floats(&c["logits"])));
        }
        for budget in [512, 3] {
            let mut e = engine(
                dir.clone(),
                PoolingKind::Classify,
                PoolingType::Last,
                budget,
            );
            assert_eq!(
                e.classifier_labels().len(),
                expected["num_labels"].as_u64().unwrap() as usize
            );
            let prompts: Vec<Vec<u32>> = cases.iter().map(|c| c.0.clone()).collect();
            let raw = PoolingParams {
                activation: Some(false),
                ..Default::default()
            };
            let logits = pool(&mut e, prompts.clone(), &raw).unwrap();
            let probs = pool(&mut e, prompts, &PoolingParams::default()).unwrap();
            for ((_, want), (got, p)) in cases.iter().zip(logits.iter().zip(&probs)) {
                assert_eq!(got.len(), want.len(), "{name}");
                for (g, w) in got.iter().zip(want) {
                    assert!((*g as f64 - w).abs() < 1e-4, "{name}: logit {g} vs {w}");
                }
                for (g, w) in p.iter().zip(softmax_or_sigmoid(want)) {
                    assert!((*g as f64 - w).abs() < 1e-5, "{name}: prob {g} vs {w}");
                }
            }
        }
    }
}
