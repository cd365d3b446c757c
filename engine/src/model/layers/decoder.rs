//! The pre-norm decoder stack (`x += attn(norm(x)); x += ffn(norm(x))`) that Llama, Qwen,
//! Mistral, Phi-3, Mixtral and Qwen3-MoE share; each of those files says how its checkpoint
//! names and configures the pieces.

use kernels::cpu::{self, WeightMatrix};

use super::attention::Attention;
use super::moe::FeedForward;
use super::norm::RmsNorm;
use super::Batch;
use crate::kv_cache::KvCache;
use crate::model::arch::DecoderModel;
use crate::model::RotaryTable;

pub(crate) struct PreNormLayer {
    pub input_norm: RmsNorm,
    pub attn: Attention,
    pub post_norm: RmsNorm,
    pub ffn: FeedForward,
}

pub(crate) struct PreNormDecoder {
    pub embed: WeightMatrix,
    pub layers: Vec<PreNormLayer>,
    pub norm: RmsNorm,
    pub rotary: RotaryTable,
}

/// The embedding rows of the batch's tokens, times `scale` when given (Gemma).
pub(crate) fn embed_rows(embed: &WeightMatrix, b: &Batch<'_>, scale: Option<f32>) -> Vec<f32> {
    let d = embed.cols();
    let mut hidden = vec![0.0f32; b.rows() * d];
    for (row, &tok) in hidden.chunks_mut(d).zip(&b.tokens) {
        embed.row_into(tok as usize, row);
        if let Some(s) = scale {
            row.iter_mut().for_each(|v| *v *= s);
        }
    }
    hidden
}

impl DecoderModel for PreNormDecoder {
    fn hidden_states(&self, b: &Batch<'_>, kv: &mut KvCache) -> Vec<f32> {
        let t = b.rows();
        let mut hidden = embed_rows(&self.embed, b, None);
        let mut normed = vec![0.0f32; hidden.len()];
        for (li, layer) in self.layers.iter().enumerate() {
            layer.input_norm.forward(&hidden, &mut normed);
            let attn = layer.attn.forward(&normed, b, kv, li, &self.rotary);
            cpu::add_assign(&mut hidden, &attn);
            layer.post_norm.forward(&hidden, &mut normed);
            let ffn = layer.ffn.forward(&normed, t);
            cpu::add_assign(&mut hidden, &ffn);
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
                l.input_norm.size_bytes()
                    + l.attn.size_bytes()
                    + l.post_norm.size_bytes()
                    + l.ffn.size_bytes()
            })
            .sum();
        self.embed.size_bytes() + self.norm.size_bytes() + layers
    }

    fn max_positions(&self) -> usize {
        self.rotary.max_positions()
    }

    fn as_pre_norm(&self) -> Option<&PreNormDecoder> {
        Some(self)
    }
}

/// Builds the stack layer by layer: `attn(prefix, i)` and `ffn(prefix, i)` load layer `i`'s
/// attention and feed-forward block from tensors under `prefix` (`model.layers.{i}`); the
/// norms are Llama's `input_layernorm` and `post_attention_layernorm`.
pub(crate) fn build_pre_norm(
    ld: &crate::model::build::Loader<'_>,
    c: &crate::config::ModelConfig,
    max_positions: usize,
    on_layer: crate::model::arch::OnLayer<'_>,
    attn: &dyn Fn(&str, usize) -> Result<Attention, crate::error::LoadError>,
    ffn: &dyn Fn(&str, usize) -> Result<FeedForward, crate::error::LoadError>,
) -> Result<PreNormDecoder, crate::error::LoadError> {
    use super::norm::NormKind;
    let d = c.hidden_size;
    let eps = c.rms_norm_eps;
    let embed = ld.stacked(&[("model.embed_tokens.weight", c.vocab_size)], d)?;
    let mut layers = Vec::with_capacity(c.num_hidden_layers);
    for i in 0..c.num_hidden_layers {
        let p = format!("model.layers.{i}");
        layers.push(PreNormLayer {
            input_norm: RmsNorm::load(
                ld,
                &format!("{p}.input_layernorm.weight"),
                d,
                eps,
                NormKind::Plain,
            )?,
            attn: attn(&p, i)?,
            post_norm: RmsNorm::load(
                ld,
                &format!("{p}.post_attention_layernorm.weight"),
                d,
                eps,
                NormKind::Plain,
            )?,
            ffn: ffn(&p, i)?,
        });
        on_layer(i + 1, c.num_hidden_layers);
    }
    Ok(PreNormDecoder {
        embed,
        layers,
        norm: RmsNorm::load(ld, "model.norm.weight", d, eps, NormKind::Plain)?,
        rotary: RotaryTable::new(
            c.head_dim,
            c.rope_theta,
            c.rope_scaling.as_ref(),
            max_positions,
        ),
    })
}

/// Llama's dense MLP under `{prefix}.mlp`.
pub(crate) fn dense_mlp(
    ld: &crate::model::build::Loader<'_>,
    c: &crate::config::ModelConfig,
    prefix: &str,
) -> Result<super::mlp::GatedMlp, crate::error::LoadError> {
    super::mlp::GatedMlp::load(
        ld,
        [
            &format!("{prefix}.mlp.gate_proj.weight"),
            &format!("{prefix}.mlp.up_proj.weight"),
            &format!("{prefix}.mlp.down_proj.weight"),
        ],
        c.hidden_size,
        c.intermediate_size,
        c.family.activation,
    )
}
