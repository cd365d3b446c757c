//! Properties of the forward pass that need no reference data: it refuses bad input with an
//! error instead of panicking, and chunking or batching a sequence does not change its logits.

use std::path::Path;

use kernels::cpu::WeightDtype;

use super::{CausalLm, ForwardError, SequenceInput, TensorData, WeightSource};
use crate::config::{Architecture, ModelConfig};
use crate::error::LoadError;
use crate::kv_cache::KvCache;
use crate::loader::DummyWeights;

const BS: usize = 4;

fn tiny(arch: Architecture) -> CausalLm {
    let config = ModelConfig {
        architecture: arch,
        vocab_size: 50,
        hidden_size: 16,
        intermediate_size: 24,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        head_dim: 8,
        rms_norm_eps: 1e-6,
        rope_theta: 10000.0,
        rope_scaling: None,
        max_position_embeddings: 64,
        tie_word_embeddings: arch == Architecture::Llama,
        qkv_bias: arch == Architecture::Qwen2,
        bos_token_id: None,
        eos_token_ids: vec![],
        checkpoint_dtype: None,
        family: Default::default(),
    };
    let src = Scaled(DummyWeights::new(Path::new("tiny"), config.clone(), 7));
    CausalLm::from_source(config, &src, WeightDtype::F32, 64, &|_, _| {}).unwrap()
}

/// Dummy weights (±1e-3) blown up to ±0.3 so logits vary by whole units: with the tiny
/// originals every logit would be ~1e-5 and any comparison would pass.
struct Scaled(DummyWeights);

impl WeightSource for Scaled {
    fn path(&self) -> &Path {
        self.0.path()
    }

    fn load(&self, name: &str) -> Result<Option<TensorData>, LoadError> {
        Ok(self.0.load(name)?.map(|(shape, data)| {
            let scale = if name.contains("norm") { 1.0 } else { 300.0 };
            (shape, data.into_iter().map(|v| v * scale).collect())
        }))
    }
}

fn cache(m: &CausalLm, blocks: usize) -> KvCache {
    KvCache::new(m.config().num_hidden_layers, blocks, m.kv_layout(BS))
}

fn close(a: &[f32], b: &[f32]) -> bool {
    let spread =
        b.iter().cloned().fold(f32::MIN, f32::max) - b.iter().cloned().fold(f32::MAX, f32::min);
    assert!(
        spread > 0.1,
        "logits too flat ({spread}) for the comparison to mean anything"
    );
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= 1e-5 * (1.0 + y.abs()))
}

#[test]
fn bad_inputs_are_errors() {
    let m = tiny(Architecture::Llama);
    let mut kv = cache(&m, 4);
    let seq = |tokens: &'static [u32], start_pos, block_table: &'static [u32]| SequenceInput {
        tokens,
        start_pos,
        block_table,
        all_logits: false,
    };
    assert_eq!(
        m.forward(&[seq(&[50], 0, &[0])], &mut kv).unwrap_err(),
        ForwardError::TokenOutOfVocab {
            token: 50,
            vocab_size: 50
        }
    );
    assert!(matches!(
        m.forward(&[seq(&[1], 64, &[0; 17])], &mut kv),
        Err(ForwardError::PositionOutOfRange { .. })
    ));
    assert!(matches!(
        m.forward(&[seq(&[1, 2, 3, 4, 5], 0, &[0])], &mut kv),
        Err(ForwardError::BlockTableTooShort { .. })
    ));
    assert!(matches!(
        m.forward(&[seq(&[1], 0, &[9])], &mut kv),
        Err(ForwardError::BlockOutOfRange { block: 9, .. })
    ));
    let mut other = KvCache::new(3, 4, m.kv_layout(BS));
    assert_eq!(
        m.forward(&[seq(&[1], 0, &[0])], &mut other).unwrap_err(),
        ForwardError::KvCacheMismatch
    );
}

#[test]
fn chunked_prefill_and_decode_match_one_shot_prefill() {
    for arch in [
        Architecture::Llama,
        Architecture::Qwen2,
        Architecture::Qwen3,
    ] {
        let m = tiny(arch);
        let tokens: Vec<u32> = (0..11).map(|i| (i * 7 + 3) % 50).collect();
        let table = [3u32, 0, 2];

        let mut kv = cache(&m, 4);
        let one = m
            .forward(
                &[SequenceInput {
                    tokens: &tokens,
                    start_pos: 0,
                    block_table: &table,
                    all_logits: true,
                }],
                &mut kv,
            )
            .unwrap();

        // Same tokens as a 5-token chunk, a 4-token chunk, then two single decode steps.
        let mut kv = cache(&m, 4);
        let mut rows = Vec::new();
        for (a, b) in [(0, 5), (5, 9), (9, 10), (10, 11)] {
            let out = m
                .forward(
                    &[SequenceInput {
                        tokens: &tokens[a..b],
                        start_pos: a,
                        block_table: &table,
                        all_logits: true,
                    }],
                    &mut kv,
                )
                .unwrap();
            rows.extend_from_slice(out.sequence(0));
        }
        assert!(
            close(&rows, one.sequence(0)),
            "{arch:?}: chunked logits differ"
        );
    }
}

#[test]
fn batching_does_not_change_a_sequence() {
    let m = tiny(Architecture::Qwen3);
    let a: Vec<u32> = vec![5, 9, 13, 2, 44, 17];
    let b: Vec<u32> = vec![8, 1, 30];
    let mut kv = cache(&m, 8);
    let alone = m
        .forward(
            &[SequenceInput {
                tokens: &a,
                start_pos: 0,
                block_table: &[0, 1],
                all_logits: true,
            }],
            &mut kv,
        )
        .unwrap();
    let mut kv = cache(&m, 8);
    let both = m
        .forward(
            &[
                SequenceInput {
                    tokens: &b,
                    start_pos: 0,
                    block_table: &[4],
                    all_logits: false,
                },
                SequenceInput {
                    tokens: &a,
                    start_pos: 0,
                    block_table: &[6, 2],
                    all_logits: true,
                },
            ],
            &mut kv,
        )
        .unwrap();
    assert_eq!(both.sequence(0).len(), m.config().vocab_size);
    assert!(close(both.sequence(1), alone.sequence(0)));
}
