//! RMSNorm, in Llama's form (`x / rms(x) * w`) and Gemma's (`x / rms(x) * (1 + w)`).

use kernels::cpu;

use crate::error::LoadError;
use crate::model::build::Loader;

/// How the stored weight scales the normalised values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NormKind {
    /// `w` (Llama, Qwen, Mistral, Phi-3).
    Plain,
    /// `1 + w` (Gemma, whose checkpoints store the offset from one).
    OnePlus,
}

pub(crate) struct RmsNorm {
    /// The effective per-channel scale (`1 + w` already added for Gemma: the sum is the
    /// float32 value transformers multiplies by, so the result is the same).
    pub weight: Vec<f32>,
    pub eps: f32,
}

impl RmsNorm {
    pub fn load(
        ld: &Loader<'_>,
        name: &str,
        dim: usize,
        eps: f64,
        kind: NormKind,
    ) -> Result<Self, LoadError> {
        let mut weight = ld.tensor(name, &[dim])?;
        if kind == NormKind::OnePlus {
            weight.iter_mut().for_each(|w| *w += 1.0);
        }
        Ok(RmsNorm {
            weight,
            eps: eps as f32,
        })
    }

    /// Normalises every `dim`-long row of `x` into `out`.
    pub fn forward(&self, x: &[f32], out: &mut [f32]) {
        cpu::rms_norm(x, &self.weight, self.eps, out);
    }

    /// Normalises every `dim`-long row of `x` in place (per-head q/k norms).
    pub fn forward_inplace(&self, x: &mut [f32]) {
        cpu::rms_norm_inplace(x, &self.weight, self.eps);
    }

    pub fn size_bytes(&self) -> usize {
        self.weight.len() * 4
    }
}
