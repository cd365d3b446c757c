//! Assembling a `CausalLm` from named tensors, whatever file format they came from.

use std::path::Path;

use kernels::cpu::{RowPart, WeightDtype, WeightMatrix};

use super::arch;
use super::CausalLm;
use crate::config::ModelConfig;
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
    /// [`WeightSource::load`] for a tensor the model needs with shape `expected`; a source
    /// that makes tensors up (`--load-format dummy`) makes it in that shape.
    fn load_expected(
        &self,
        name: &str,
        _expected: &[usize],
    ) -> Result<Option<TensorData>, LoadError> {
        self.load(name)
    }
}

/// Reads named tensors from a source with shape checks, storing matrices as `dtype`.
pub(crate) struct Loader<'a> {
    src: &'a dyn WeightSource,
    dtype: WeightDtype,
}

impl Loader<'_> {
    /// The file or folder the weights come from, for error messages.
    pub fn path(&self) -> &Path {
        self.src.path()
    }

    /// Whether the source has tensor `name`.
    pub fn has(&self, name: &str) -> Result<bool, LoadError> {
        Ok(self.src.load(name)?.is_some())
    }

    /// A tensor of exactly `expected` elements (1-D tensors may be stored as `[1, n]`).
    pub fn tensor(&self, name: &str, expected: &[usize]) -> Result<Vec<f32>, LoadError> {
        let (shape, data) =
            self.src
                .load_expected(name, expected)?
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

    /// Several `[rows_i, cols]` tensors stacked into one matrix.
    pub fn stacked(&self, parts: &[(&str, usize)], cols: usize) -> Result<WeightMatrix, LoadError> {
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
        let body = arch::load(&ld, c, max_positions, on_layer)?;
        let lm_head = if c.tie_word_embeddings {
            body.embed().clone()
        } else {
            ld.stacked(&[("lm_head.weight", c.vocab_size)], c.hidden_size)?
        };
        let final_softcap = c.family.final_logit_softcapping.map(|s| s as f32);
        Ok(CausalLm {
            config,
            body,
            lm_head,
            final_softcap,
            #[cfg(feature = "cuda")]
            gpu: None,
        })
    }
}
