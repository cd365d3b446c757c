//! `--load-format dummy`: random weights of a config's shapes, for benchmarks of large models
//! without their files. Values are small (uniform in ±1e-3, as vLLM's dummy loader) so the
//! activations stay finite through many layers.

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};

use crate::config::ModelConfig;
use crate::error::LoadError;
use crate::model::{TensorData, WeightSource};

pub struct DummyWeights {
    path: PathBuf,
    config: ModelConfig,
    seed: u64,
}

impl DummyWeights {
    pub fn new(path: &Path, config: ModelConfig, seed: u64) -> Self {
        DummyWeights {
            path: path.to_path_buf(),
            config,
            seed,
        }
    }

    fn shape_of(&self, name: &str) -> Option<Vec<usize>> {
        let c = &self.config;
        let (d, hd) = (c.hidden_size, c.head_dim);
        let (q, kv) = (c.num_attention_heads * hd, c.num_key_value_heads * hd);
        if name == "model.embed_tokens.weight" || name == "lm_head.weight" {
            return Some(vec![c.vocab_size, d]);
        }
        if name == "model.norm.weight" {
            return Some(vec![d]);
        }
        let field = name.strip_prefix("model.layers.")?.split_once('.')?.1;
        Some(match field {
            "input_layernorm.weight" | "post_attention_layernorm.weight" => vec![d],
            "self_attn.q_proj.weight" => vec![q, d],
            "self_attn.k_proj.weight" | "self_attn.v_proj.weight" => vec![kv, d],
            "self_attn.q_proj.bias" => vec![q],
            "self_attn.k_proj.bias" | "self_attn.v_proj.bias" => vec![kv],
            "self_attn.q_norm.weight" | "self_attn.k_norm.weight" => vec![hd],
            "self_attn.o_proj.weight" => vec![d, q],
            "mlp.gate_proj.weight" | "mlp.up_proj.weight" => vec![c.intermediate_size, d],
            "mlp.down_proj.weight" => vec![d, c.intermediate_size],
            _ => return None,
        })
    }
}

impl WeightSource for DummyWeights {
    fn path(&self) -> &Path {
        &self.path
    }

    fn load(&self, name: &str) -> Result<Option<TensorData>, LoadError> {
        match self.shape_of(name) {
            Some(shape) => Ok(Some(self.make(name, shape))),
            None => Ok(None),
        }
    }

    /// Any tensor an architecture needs (experts, fused projections, Gemma's extra norms)
    /// is made in the shape the model code expects.
    fn load_expected(
        &self,
        name: &str,
        expected: &[usize],
    ) -> Result<Option<TensorData>, LoadError> {
        let shape = self.shape_of(name).unwrap_or_else(|| expected.to_vec());
        Ok(Some(self.make(name, shape)))
    }
}

impl DummyWeights {
    fn make(&self, name: &str, shape: Vec<usize>) -> TensorData {
        // A per-tensor seed keeps the weights reproducible whatever order they are asked in.
        let h = name
            .bytes()
            .fold(self.seed ^ 0xcbf2_9ce4_8422_2325, |h, b| {
                (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
            });
        let mut rng = rand::rngs::StdRng::seed_from_u64(h);
        let n = shape.iter().product();
        let is_norm = name.contains("norm");
        let data = (0..n)
            .map(|_| {
                if is_norm {
                    1.0 + rng.random_range(-1e-3..1e-3)
                } else {
                    rng.random_range(-1e-3..1e-3)
                }
            })
            .collect();
        (shape, data)
    }
}
