//! `LlamaForCausalLM`, `Qwen2ForCausalLM` (q/k/v bias) and `Qwen3ForCausalLM` (per-head q/k
//! RMSNorm): the pre-norm decoder with full causal attention and a SwiGLU MLP.

use super::OnLayer;
use crate::config::{Architecture, ModelConfig};
use crate::error::LoadError;
use crate::model::build::Loader;
use crate::model::layers::attention::{Attention, QkNorm, QkvNames};
use crate::model::layers::decoder::{build_pre_norm, dense_mlp, PreNormDecoder};
use crate::model::layers::moe::FeedForward;
use crate::model::layers::norm::NormKind;

pub(crate) fn load(
    ld: &Loader<'_>,
    c: &ModelConfig,
    max_positions: usize,
    on_layer: OnLayer<'_>,
) -> Result<PreNormDecoder, LoadError> {
    let qk_norm = if c.architecture == Architecture::Qwen3 {
        QkNorm::Required(NormKind::Plain)
    } else {
        QkNorm::IfPresent
    };
    build_pre_norm(
        ld,
        c,
        max_positions,
        on_layer,
        &|p, _| {
            Attention::load(
                ld,
                c,
                QkvNames::Separate(&format!("{p}.self_attn")),
                &format!("{p}.self_attn.o_proj.weight"),
                qk_norm,
                None,
            )
        },
        &|p, _| Ok(FeedForward::Dense(dense_mlp(ld, c, p)?)),
    )
}
