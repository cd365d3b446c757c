//! Assembling a `CausalLm` from named tensors, whatever file format they came from.

use std::path::Path;

use kernels::cpu::{RowPart, WeightDtype, WeightMatrix};

use super::{CausalLm, Layer, RotaryTable};
use crate::config::{Architecture, ModelConfig};
use crate::error::LoadError;

/// A tensor's row-major shape and its values.
pub type TensorData = (Vec<usize>, Vec<f32>);

/// A 2-D tensor as the file stores it (block format, shared bytes, HF row order).
pub struct RawTensor {
    pub shape: Vec<usize>,
    pub part: RowPart,
}

/// A provider of tensors by their Hugging Face names (`model.layers.0.self_attn.q_proj.weight`),
/// as f32 in row-major order with the Hugging Face layout (GGUF's Q/K permutation undone).
pub trait WeightSource: Sync {
    /// The file or folder the weights come from, for error messages.
    fn path(&self) -> &Path;
    /// The tensor's row-major shape and values, or `None` when the source has no such tensor.
    fn load(&self, name: &str) -> Result<Option<TensorData>, LoadError>;
    /// The 2-D tensor as stored, when the source can share it in a format the CPU kernels
    /// read (`None`: use [`WeightSource::load`]).
    fn load_raw(&self, _name: &str) -> Result<Option<RawTensor>, LoadError> {
        Ok(None)
    }
}

struct Loader<'a> {
    src: &'a dyn WeightSource,
    dtype: WeightDtype,
}

impl Loader<'_> {
    fn tensor(&self, name: &str, expected: &[usize]) -> Result<Vec<f32>, LoadError> {
        let (shape, data) = self
            .src
            .load(name)?
            .ok_or_else(|| LoadError::MissingTensor {
                path: self.src.path().to_path_buf(),
                name: name.to_string(),
            })?;
        // A 1-D tensor may be stored as [n] or [1, n]; compare element layouts, not ranks.
        let squeeze = |s: &[usize]| s.iter().copied().filter(|d| *d != 1).collect::<Vec<_>>();
        if squeeze(&shape) != squeeze(expected) || data.len() != expected.iter().product::<usize>()
        {
            return Err(LoadError::TensorShape {
                path: self.src.path().to_path_buf(),
                name: name.to_string(),
                got: shape,
                expected: expected.to_vec(),
            });
        }
        Ok(data)
    }

    fn optional(&self, name: &str, expected: &[usize]) -> Result<Option<Vec<f32>>, LoadError> {
        match self.src.load(name)? {
            None => Ok(None),
            Some(_) => self.tensor(name, expected).map(Some),
        }
    }

    /// Several `[rows_i, cols]` tensors stacked into one matrix.
    fn stacked(&self, parts: &[(&str, usize)], cols: usize) -> Result<WeightMatrix, LoadError> {
        if let Some(m) = self.stacked_as_stored(parts, cols)? {
            return Ok(m);
        }
        let rows: usize = parts.iter().map(|p| p.1).sum();
        let mut all = Vec::with_capacity(rows * cols);
        for (name, r) in parts {
            all.extend(self.tensor(name, &[*r, cols])?);
        }
        self.matrix(parts[0].0, rows, cols, all)
    }

    /// The stacked matrix built from the stored tensors without conversion, when the dtype is
    /// "as stored" and the source shares every part.
    fn stacked_as_stored(
        &self,
        parts: &[(&str, usize)],
        cols: usize,
    ) -> Result<Option<WeightMatrix>, LoadError> {
        if self.dtype != WeightDtype::AsStored {
            return Ok(None);
        }
        let mut raw = Vec::with_capacity(parts.len());
        for (name, rows) in parts {
            let Some(t) = self.src.load_raw(name)? else {
                return Ok(None);
            };
            if t.shape != [*rows, cols] {
                return Err(LoadError::TensorShape {
                    path: self.src.path().to_path_buf(),
                    name: name.to_string(),
                    got: t.shape,
                    expected: vec![*rows, cols],
                });
            }
            raw.push(t.part);
        }
        WeightMatrix::from_parts(cols, raw)
            .map(Some)
            .map_err(|e| LoadError::Tensor {
                path: self.src.path().to_path_buf(),
                name: parts[0].0.to_string(),
                msg: e.to_string(),
            })
    }

    fn matrix(
        &self,
        name: &str,
        rows: usize,
        cols: usize,
        data: Vec<f32>,
    ) -> Result<WeightMatrix, LoadError> {
        WeightMatrix::from_f32(rows, cols, data, self.dtype).map_err(|e| LoadError::Tensor {
            path: self.src.path().to_path_buf(),
            name: name.to_string(),
            msg: e.to_string(),
        })
    }
}

impl CausalLm {
    /// Builds the model from `source`, storing weights as `dtype`, with rotary tables for
    /// `max_positions` positions.
    /// `on_layer(done, total)` is called after each decoder layer, for progress reports.
    pub fn from_source(
        config: ModelConfig,
        source: &dyn WeightSource,
        dtype: WeightDtype,
        max_positions: usize,
        on_layer: &dyn Fn(usize, usize),
    ) -> Result<Self, LoadError> {
        config.validate(source.path())?;
        let ld = Loader { src: source, dtype };
        let c = &config;
        let (d, hd) = (c.hidden_size, c.head_dim);
        let (q_rows, kv_rows) = (c.num_attention_heads * hd, c.num_key_value_heads * hd);

        let embed = ld.stacked(&[("model.embed_tokens.weight", c.vocab_size)], d)?;

        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let n = |s: &str| format!("{p}.{s}");
            let qkv_bias = if c.qkv_bias {
                let mut b = ld.tensor(&n("self_attn.q_proj.bias"), &[q_rows])?;
                b.extend(ld.tensor(&n("self_attn.k_proj.bias"), &[kv_rows])?);
                b.extend(ld.tensor(&n("self_attn.v_proj.bias"), &[kv_rows])?);
                Some(b)
            } else {
                None
            };
            let (q_norm, k_norm) = if c.architecture == Architecture::Qwen3 {
                (
                    Some(ld.tensor(&n("self_attn.q_norm.weight"), &[hd])?),
                    Some(ld.tensor(&n("self_attn.k_norm.weight"), &[hd])?),
                )
            } else {
                (
                    ld.optional(&n("self_attn.q_norm.weight"), &[hd])?,
                    ld.optional(&n("self_attn.k_norm.weight"), &[hd])?,
                )
            };
            let qkv_names = [
                n("self_attn.q_proj.weight"),
                n("self_attn.k_proj.weight"),
                n("self_attn.v_proj.weight"),
            ];
            let gu_names = [n("mlp.gate_proj.weight"), n("mlp.up_proj.weight")];
            layers.push(Layer {
                input_norm: ld.tensor(&n("input_layernorm.weight"), &[d])?,
                qkv: ld.stacked(
                    &[
                        (&qkv_names[0], q_rows),
                        (&qkv_names[1], kv_rows),
                        (&qkv_names[2], kv_rows),
                    ],
                    d,
                )?,
                qkv_bias,
                q_norm,
                k_norm,
                o_proj: ld.stacked(&[(&n("self_attn.o_proj.weight"), d)], q_rows)?,
                post_norm: ld.tensor(&n("post_attention_layernorm.weight"), &[d])?,
                gate_up: ld.stacked(
                    &[
                        (&gu_names[0], c.intermediate_size),
                        (&gu_names[1], c.intermediate_size),
                    ],
                    d,
                )?,
                down: ld.stacked(&[(&n("mlp.down_proj.weight"), d)], c.intermediate_size)?,
            });
            on_layer(i + 1, c.num_hidden_layers);
        }
        let final_norm = ld.tensor("model.norm.weight", &[d])?;
        let lm_head = if c.tie_word_embeddings {
            embed.clone()
        } else {
            ld.stacked(&[("lm_head.weight", c.vocab_size)], d)?
        };
        let rotary = RotaryTable::new(hd, c.rope_theta, c.rope_scaling.as_ref(), max_positions);
        Ok(CausalLm {
            config,
            embed,
            layers,
            final_norm,
            lm_head,
            rotary,
            #[cfg(feature = "cuda")]
            gpu: None,
        })
    }
}
