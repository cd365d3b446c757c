//! `Gemma2ForCausalLM`: embeddings scaled by `sqrt(hidden_size)`; "sandwich" layers that norm
//! the input and the output of both attention and MLP; Gemma's `(1 + w)` RMSNorm; GELU-tanh
//! MLP; attention scaled by `query_pre_attn_scalar^-0.5` with soft-capped scores; sliding and
//! global layers alternating; tied lm_head with soft-capped logits (applied by `CausalLm`).

use kernels::cpu::{self, WeightMatrix};

use super::{DecoderModel, OnLayer};
use crate::config::ModelConfig;
use crate::error::LoadError;
use crate::kv_cache::KvCache;
use crate::model::build::Loader;
use crate::model::layers::attention::{Attention, QkNorm, QkvNames};
use crate::model::layers::decoder::{dense_mlp, embed_rows};
use crate::model::layers::mlp::GatedMlp;
use crate::model::layers::norm::{NormKind, RmsNorm};
use crate::model::layers::Batch;
use crate::model::RotaryTable;

pub(crate) struct SandwichLayer {
    pub input_norm: RmsNorm,
    pub attn: Attention,
    pub post_attn_norm: RmsNorm,
    pub pre_ffn_norm: RmsNorm,
    pub mlp: GatedMlp,
    pub post_ffn_norm: RmsNorm,
    /// Gemma 3: this (sliding-window) layer rotates with the local RoPE base.
    pub local_rope: bool,
}

pub(crate) struct GemmaDecoder {
    pub embed: WeightMatrix,
    /// `sqrt(hidden_size)` rounded to f32, as transformers multiplies by it.
    pub embed_scale: f32,
    pub layers: Vec<SandwichLayer>,
    pub norm: RmsNorm,
    pub rope: RotaryTable,
    /// Gemma 3's table for the sliding layers (`rope_local_base_freq`, no scaling).
    pub local_rope: Option<RotaryTable>,
}

impl DecoderModel for GemmaDecoder {
    fn hidden_states(&self, b: &Batch<'_>, kv: &mut KvCache) -> Vec<f32> {
        let t = b.rows();
        let mut hidden = embed_rows(&self.embed, b, Some(self.embed_scale));
        let mut normed = vec![0.0f32; hidden.len()];
        for (li, l) in self.layers.iter().enumerate() {
            let rope = match (&self.local_rope, l.local_rope) {
                (Some(local), true) => local,
                _ => &self.rope,
            };
            l.input_norm.forward(&hidden, &mut normed);
            let attn = l.attn.forward(&normed, b, kv, li, rope);
            l.post_attn_norm.forward(&attn, &mut normed);
            cpu::add_assign(&mut hidden, &normed);
            l.pre_ffn_norm.forward(&hidden, &mut normed);
            let mlp = l.mlp.forward(&normed, t);
            l.post_ffn_norm.forward(&mlp, &mut normed);
            cpu::add_assign(&mut hidden, &normed);
        }
        self.norm.forward(&hidden, &mut normed);
        normed
    }

    fn embed(&self) -> &WeightMatrix {
        &self.embed
    }

    fn weight_bytes(&self) -> usize {
        let layers: usize = self
            .layers
            .iter()
            .map(|l| {
                l.attn.size_bytes()
                    + l.mlp.size_bytes()
                    + [
                        &l.input_norm,
                        &l.post_attn_norm,
                        &l.pre_ffn_norm,
                        &l.post_ffn_norm,
                    ]
                    .iter()
                    .map(|n| n.size_bytes())
                    .sum::<usize>()
            })
            .sum();
        self.embed.size_bytes() + self.norm.size_bytes() + layers
    }

    fn max_positions(&self) -> usize {
        self.rope.max_positions()
    }
}

/// Loads a Gemma 2 or Gemma 3 stack; `qk_norm` and `local_rope` are Gemma 3's additions.
pub(crate) fn load_gemma(
    ld: &Loader<'_>,
    c: &ModelConfig,
    max_positions: usize,
    on_layer: OnLayer<'_>,
    qk_norm: QkNorm,
    local_rope: Option<RotaryTable>,
) -> Result<GemmaDecoder, LoadError> {
    let (d, eps) = (c.hidden_size, c.rms_norm_eps);
    let norm = |name: &str| RmsNorm::load(ld, name, d, eps, NormKind::OnePlus);
    let embed = ld.stacked(&[("model.embed_tokens.weight", c.vocab_size)], d)?;
    let mut layers = Vec::with_capacity(c.num_hidden_layers);
    for i in 0..c.num_hidden_layers {
        let p = format!("model.layers.{i}");
        let n = |s: &str| format!("{p}.{s}.weight");
        layers.push(SandwichLayer {
            input_norm: norm(&n("input_layernorm"))?,
            attn: Attention::load(
                ld,
                c,
                QkvNames::Separate(&format!("{p}.self_attn")),
                &n("self_attn.o_proj"),
                qk_norm,
                c.family.window_of(i),
            )?,
            post_attn_norm: norm(&n("post_attention_layernorm"))?,
            pre_ffn_norm: norm(&n("pre_feedforward_layernorm"))?,
            mlp: dense_mlp(ld, c, &p)?,
            post_ffn_norm: norm(&n("post_feedforward_layernorm"))?,
            local_rope: c.family.sliding_layers.get(i).copied().unwrap_or(false),
        });
        on_layer(i + 1, c.num_hidden_layers);
    }
    Ok(GemmaDecoder {
        embed,
        embed_scale: (d as f64).sqrt() as f32,
        layers,
        norm: norm("model.norm.weight")?,
        rope: RotaryTable::new(
            c.head_dim,
            c.rope_theta,
            c.rope_scaling.as_ref(),
            max_positions,
        ),
        local_rope,
    })
}

pub(crate) fn load(
    ld: &Loader<'_>,
    c: &ModelConfig,
    max_positions: usize,
    on_layer: OnLayer<'_>,
) -> Result<GemmaDecoder, LoadError> {
    load_gemma(ld, c, max_positions, on_layer, QkNorm::IfPresent, None)
}
