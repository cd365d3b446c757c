//! Sparse mixture-of-experts feed-forward (Mixtral, Qwen3-MoE): a router picks the top-k
//! experts of each token; on the CPU the tokens routed to one expert are gathered and go
//! through that expert in one matmul per projection, and the outputs are scattered back
//! weighted by the routing probabilities.

use kernels::cpu::{self, WeightMatrix};

use super::mlp::GatedMlp;
use crate::config::{ModelConfig, MoeParams};
use crate::error::LoadError;
use crate::model::build::Loader;

pub(crate) struct SparseMoe {
    /// `num_experts × hidden`: the router's logits.
    pub router: WeightMatrix,
    pub experts: Vec<GatedMlp>,
    pub top_k: usize,
    /// Divide the top-k probabilities by their sum (Mixtral; Qwen3-MoE's `norm_topk_prob`).
    pub renormalize: bool,
}

impl SparseMoe {
    /// Loads the router `{block}.gate.weight` and the experts
    /// `{block}.experts.{e}.{name}.weight` for the three `[gate, up, down]` names (Mixtral:
    /// `w1`, `w3`, `w2`; Qwen3-MoE: `gate_proj`, `up_proj`, `down_proj`).
    pub fn load(
        ld: &Loader<'_>,
        c: &ModelConfig,
        p: &MoeParams,
        block: &str,
        [gate, up, down]: [&str; 3],
    ) -> Result<Self, LoadError> {
        let router = ld.stacked(
            &[(&format!("{block}.gate.weight"), p.num_experts)],
            c.hidden_size,
        )?;
        let experts = (0..p.num_experts)
            .map(|e| {
                let w = |n: &str| format!("{block}.experts.{e}.{n}.weight");
                GatedMlp::load(
                    ld,
                    [&w(gate), &w(up), &w(down)],
                    c.hidden_size,
                    p.expert_intermediate_size,
                    c.family.activation,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SparseMoe::new(router, experts, p))
    }

    pub fn new(router: WeightMatrix, experts: Vec<GatedMlp>, p: &MoeParams) -> Self {
        SparseMoe {
            router,
            experts,
            top_k: p.top_k,
            renormalize: p.norm_topk_prob,
        }
    }

    /// The chosen experts of one token and their weights: softmax over all experts' logits
    /// (in f32, as transformers does), the `top_k` largest (lowest index first on ties),
    /// renormalised if configured.
    pub fn route(&self, logits: &[f32]) -> Vec<(usize, f32)> {
        let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
        let z: f32 = exp.iter().sum();
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|a, b| exp[*b].total_cmp(&exp[*a]).then(a.cmp(b)));
        let mut picked: Vec<(usize, f32)> = order[..self.top_k.min(order.len())]
            .iter()
            .map(|e| (*e, exp[*e] / z))
            .collect();
        if self.renormalize {
            let sum: f32 = picked.iter().map(|p| p.1).sum();
            if sum > 0.0 {
                picked.iter_mut().for_each(|p| p.1 /= sum);
            }
        }
        picked
    }

    /// `rows` rows of `x` (each `hidden` long) → `rows × hidden`.
    pub fn forward(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let n_exp = self.experts.len();
        let hidden = self.router.cols();
        let mut logits = vec![0.0f32; rows * n_exp];
        cpu::matmul(x, rows, &self.router, &mut logits);
        // Per expert: the rows routed to it and their weights.
        let mut assigned: Vec<Vec<(usize, f32)>> = vec![Vec::new(); n_exp];
        for r in 0..rows {
            for (e, w) in self.route(&logits[r * n_exp..(r + 1) * n_exp]) {
                assigned[e].push((r, w));
            }
        }
        let mut out = vec![0.0f32; rows * hidden];
        let mut gathered = Vec::new();
        for (expert, routed) in self.experts.iter().zip(&assigned) {
            if routed.is_empty() {
                continue;
            }
            gathered.clear();
            for (r, _) in routed {
                gathered.extend_from_slice(&x[r * hidden..(r + 1) * hidden]);
            }
            let y = expert.forward(&gathered, routed.len());
            for (i, (r, w)) in routed.iter().enumerate() {
                let dst = &mut out[r * hidden..(r + 1) * hidden];
                for (o, v) in dst.iter_mut().zip(&y[i * hidden..(i + 1) * hidden]) {
                    *o += w * v;
                }
            }
        }
        out
    }

    pub fn size_bytes(&self) -> usize {
        self.router.size_bytes() + self.experts.iter().map(GatedMlp::size_bytes).sum::<usize>()
    }
}

/// A decoder layer's feed-forward block: dense, or a mixture of experts.
pub(crate) enum FeedForward {
    Dense(GatedMlp),
    Sparse(SparseMoe),
}

impl FeedForward {
    pub fn forward(&self, x: &[f32], rows: usize) -> Vec<f32> {
        match self {
            FeedForward::Dense(m) => m.forward(x, rows),
            FeedForward::Sparse(m) => m.forward(x, rows),
        }
    }

    pub fn size_bytes(&self) -> usize {
        match self {
            FeedForward::Dense(m) => m.size_bytes(),
            FeedForward::Sparse(m) => m.size_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernels::cpu::WeightDtype;

    fn moe(renormalize: bool) -> SparseMoe {
        let router = WeightMatrix::from_f32(4, 1, vec![0.0; 4], WeightDtype::F32).unwrap();
        SparseMoe {
            router,
            experts: Vec::new(),
            top_k: 2,
            renormalize,
        }
    }

    #[test]
    fn routing_takes_the_top_k_softmax_weights_and_renormalises_on_request() {
        let logits = [1.0f32, 3.0, 2.0, 3.0];
        let z: f32 = logits.iter().map(|l| (l - 3.0f32).exp()).sum();
        // Ties: the lower index first.
        let r = moe(false).route(&logits);
        assert_eq!((r[0].0, r[1].0), (1, 3));
        assert!((r[0].1 - 1.0 / z).abs() < 1e-6 && (r[1].1 - 1.0 / z).abs() < 1e-6);
        let r = moe(true).route(&logits);
        assert!((r[0].1 - 0.5).abs() < 1e-6 && (r[1].1 - 0.5).abs() < 1e-6);
    }
}
