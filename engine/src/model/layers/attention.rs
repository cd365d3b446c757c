//! Grouped-query self-attention with RoPE over the paged KV cache, with the options the
//! families differ in: q/k/v bias, per-head q/k RMSNorm, score scale, soft-cap, sliding window.

use kernels::cpu::{self, AttentionParams, WeightMatrix};

use super::norm::{NormKind, RmsNorm};
use super::Batch;
use crate::config::ModelConfig;
use crate::error::LoadError;
use crate::kv_cache::KvCache;
use crate::model::build::Loader;
use crate::model::RotaryTable;

/// Whether the checkpoint has per-head q/k norms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QkNorm {
    /// Used when the tensors are present (Llama-family checkpoints that carry them).
    IfPresent,
    /// Required, of this kind (Qwen3: plain; Gemma 3: `1 + w`).
    Required(NormKind),
}

/// How the q, k and v projections are stored.
pub(crate) enum QkvNames<'a> {
    /// `q_proj`, `k_proj`, `v_proj` under this prefix (with optional biases).
    Separate(&'a str),
    /// One fused tensor of rows `[q; k; v]` (Phi-3's `qkv_proj`).
    Fused(&'a str),
}

pub(crate) struct Attention {
    /// q, k and v projections stacked into one matrix: one pass over the activations.
    pub qkv: WeightMatrix,
    pub qkv_bias: Option<Vec<f32>>,
    pub q_norm: Option<RmsNorm>,
    pub k_norm: Option<RmsNorm>,
    pub o_proj: WeightMatrix,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub params: AttentionParams,
}

impl Attention {
    /// Loads `{prefix}.{q,k,v,o}_proj` (or the fused form) with the config's geometry; the
    /// scale is `head_dim^-0.5` unless `query_pre_attn_scalar` (Gemma) says otherwise.
    pub fn load(
        ld: &Loader<'_>,
        c: &ModelConfig,
        names: QkvNames<'_>,
        o_proj: &str,
        qk_norm: QkNorm,
        window: Option<usize>,
    ) -> Result<Self, LoadError> {
        let (d, hd) = (c.hidden_size, c.head_dim);
        let (q_rows, kv_rows) = (c.num_attention_heads * hd, c.num_key_value_heads * hd);
        let (qkv, qkv_bias, prefix) = match names {
            QkvNames::Fused(name) => {
                let prefix = name.rsplit_once('.').map_or("", |p| p.0);
                (
                    ld.stacked(&[(name, q_rows + 2 * kv_rows)], d)?,
                    None,
                    prefix,
                )
            }
            QkvNames::Separate(p) => {
                let n = |s: &str| format!("{p}.{s}");
                let bias = if c.qkv_bias {
                    let mut b = ld.tensor(&n("q_proj.bias"), &[q_rows])?;
                    b.extend(ld.tensor(&n("k_proj.bias"), &[kv_rows])?);
                    b.extend(ld.tensor(&n("v_proj.bias"), &[kv_rows])?);
                    Some(b)
                } else {
                    None
                };
                let w = [n("q_proj.weight"), n("k_proj.weight"), n("v_proj.weight")];
                let qkv = ld.stacked(&[(&w[0], q_rows), (&w[1], kv_rows), (&w[2], kv_rows)], d)?;
                (qkv, bias, p)
            }
        };
        let eps = c.rms_norm_eps;
        let (qn, kn) = (
            format!("{prefix}.q_norm.weight"),
            format!("{prefix}.k_norm.weight"),
        );
        let (q_norm, k_norm) = match qk_norm {
            QkNorm::Required(kind) => (
                Some(RmsNorm::load(ld, &qn, hd, eps, kind)?),
                Some(RmsNorm::load(ld, &kn, hd, eps, kind)?),
            ),
            QkNorm::IfPresent if ld.has(&qn)? && ld.has(&kn)? => (
                Some(RmsNorm::load(ld, &qn, hd, eps, NormKind::Plain)?),
                Some(RmsNorm::load(ld, &kn, hd, eps, NormKind::Plain)?),
            ),
            QkNorm::IfPresent => (None, None),
        };
        let scale = match c.family.query_pre_attn_scalar {
            Some(s) => s.powf(-0.5) as f32,
            None => 1.0 / (hd as f32).sqrt(),
        };
        Ok(Attention {
            qkv,
            qkv_bias,
            q_norm,
            k_norm,
            o_proj: ld.stacked(&[(o_proj, d)], q_rows)?,
            n_heads: c.num_attention_heads,
            n_kv_heads: c.num_key_value_heads,
            head_dim: hd,
            params: AttentionParams {
                scale,
                softcap: c.family.attn_logit_softcapping.map(|s| s as f32),
                window,
            },
        })
    }

    /// Attention of the batch's rows `x` (already normed), writing their K/V into layer
    /// `layer` of `kv`; returns the o-projected output (`rows × hidden`).
    pub fn forward(
        &self,
        x: &[f32],
        b: &Batch<'_>,
        kv: &mut KvCache,
        layer: usize,
        rope: &RotaryTable,
    ) -> Vec<f32> {
        let t = b.rows();
        let hd = self.head_dim;
        let (q_dim, kv_dim) = (self.n_heads * hd, self.n_kv_heads * hd);
        let qkv_dim = q_dim + 2 * kv_dim;
        let mut qkv = vec![0.0f32; t * qkv_dim];
        cpu::matmul(x, t, &self.qkv, &mut qkv);
        let mut q = vec![0.0f32; t * q_dim];
        let mut k = vec![0.0f32; t * kv_dim];
        let mut v = vec![0.0f32; t * kv_dim];
        for i in 0..t {
            let r = &mut qkv[i * qkv_dim..(i + 1) * qkv_dim];
            if let Some(bias) = &self.qkv_bias {
                cpu::add_assign(r, bias);
            }
            q[i * q_dim..(i + 1) * q_dim].copy_from_slice(&r[..q_dim]);
            k[i * kv_dim..(i + 1) * kv_dim].copy_from_slice(&r[q_dim..q_dim + kv_dim]);
            v[i * kv_dim..(i + 1) * kv_dim].copy_from_slice(&r[q_dim + kv_dim..]);
        }
        if let (Some(qn), Some(kn)) = (&self.q_norm, &self.k_norm) {
            qn.forward_inplace(&mut q);
            kn.forward_inplace(&mut k);
        }
        let (cos, sin) = (rope.cos(), rope.sin());
        cpu::rope_neox_inplace(&mut q, self.n_heads, hd, &b.positions, cos, sin);
        cpu::rope_neox_inplace(&mut k, self.n_kv_heads, hd, &b.positions, cos, sin);
        let layout = kv.layout();
        let (k_store, v_store) = kv.layer_mut(layer);
        cpu::write_kv(k_store, v_store, layout, &b.slots, &k, &v);
        let mut attn = vec![0.0f32; t * q_dim];
        cpu::paged_attention_with(
            &q,
            &b.attn_seqs,
            k_store,
            v_store,
            layout,
            self.n_heads,
            self.params,
            &mut attn,
        );
        let mut out = vec![0.0f32; t * self.o_proj.rows()];
        cpu::matmul(&attn, t, &self.o_proj, &mut out);
        out
    }

    pub fn size_bytes(&self) -> usize {
        let norms = [&self.q_norm, &self.k_norm]
            .iter()
            .filter_map(|n| n.as_ref().map(RmsNorm::size_bytes))
            .sum::<usize>();
        self.qkv.size_bytes()
            + self.o_proj.size_bytes()
            + self.qkv_bias.as_ref().map_or(0, |b| b.len() * 4)
            + norms
    }
}
