//! `MistralForCausalLM`: Llama's decoder where every layer attends through a sliding window
//! of `sliding_window` tokens (when the config sets one; Mistral 7B v0.2+ sets `null`).

use super::OnLayer;
use crate::config::ModelConfig;
use crate::error::LoadError;
use crate::model::build::Loader;
use crate::model::layers::attention::{Attention, QkNorm, QkvNames};
use crate::model::layers::decoder::{build_pre_norm, dense_mlp, PreNormDecoder};
use crate::model::layers::moe::FeedForward;

pub(crate) fn load(
    ld: &Loader<'_>,
    c: &ModelConfig,
    max_positions: usize,
    on_layer: OnLayer<'_>,
) -> Result<PreNormDecoder, LoadError> {
    build_pre_norm(
        ld,
        c,
        max_positions,
        on_layer,
        &|p, i| windowed_attention(ld, c, p, i),
        &|p, _| Ok(FeedForward::Dense(dense_mlp(ld, c, p)?)),
    )
}

/// Mistral's attention (shared by Mixtral): q/k/v/o projections, window per the config.
pub(crate) fn windowed_attention(
    ld: &Loader<'_>,
    c: &ModelConfig,
    prefix: &str,
    layer: usize,
) -> Result<Attention, LoadError> {
    Attention::load(
        ld,
        c,
        QkvNames::Separate(&format!("{prefix}.self_attn")),
        &format!("{prefix}.self_attn.o_proj.weight"),
        QkNorm::IfPresent,
        c.family.window_of(layer),
    )
}
