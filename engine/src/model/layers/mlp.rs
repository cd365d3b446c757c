//! The gated feed-forward block `down(act(gate(x)) * up(x))` of every decoder here.

use kernels::cpu::{self, WeightMatrix};

use crate::config::Activation;
use crate::error::LoadError;
use crate::model::build::Loader;

pub(crate) struct GatedMlp {
    /// gate and up projections stacked: rows `[gate; up]`, one pass over the activations.
    pub gate_up: WeightMatrix,
    pub down: WeightMatrix,
    pub inter: usize,
    pub act: Activation,
}

impl GatedMlp {
    /// From separate gate/up/down tensors (Llama's `gate_proj`, `up_proj`, `down_proj`, or
    /// Mixtral's `w1`, `w3`, `w2`).
    pub fn load(
        ld: &Loader<'_>,
        [gate, up, down]: [&str; 3],
        hidden: usize,
        inter: usize,
        act: Activation,
    ) -> Result<Self, LoadError> {
        Ok(GatedMlp {
            gate_up: ld.stacked(&[(gate, inter), (up, inter)], hidden)?,
            down: ld.stacked(&[(down, hidden)], inter)?,
            inter,
            act,
        })
    }

    /// From a fused `[gate; up]` tensor (Phi-3's `gate_up_proj`).
    pub fn load_fused(
        ld: &Loader<'_>,
        gate_up: &str,
        down: &str,
        hidden: usize,
        inter: usize,
        act: Activation,
    ) -> Result<Self, LoadError> {
        Ok(GatedMlp {
            gate_up: ld.stacked(&[(gate_up, 2 * inter)], hidden)?,
            down: ld.stacked(&[(down, hidden)], inter)?,
            inter,
            act,
        })
    }

    /// `rows` rows of `x` (each `hidden` long) → `rows × hidden`.
    pub fn forward(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let mut gate_up = vec![0.0f32; rows * 2 * self.inter];
        cpu::matmul(x, rows, &self.gate_up, &mut gate_up);
        let mut act = vec![0.0f32; rows * self.inter];
        match self.act {
            crate::config::Activation::Silu => cpu::silu_mul(&gate_up, self.inter, &mut act),
            crate::config::Activation::GeluTanh => {
                cpu::gelu_tanh_mul(&gate_up, self.inter, &mut act)
            }
        }
        let mut out = vec![0.0f32; rows * self.down.rows()];
        cpu::matmul(&act, rows, &self.down, &mut out);
        out
    }

    pub fn size_bytes(&self) -> usize {
        self.gate_up.size_bytes() + self.down.size_bytes()
    }
}
