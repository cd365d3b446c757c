//! `Phi3ForCausalLM` (Phi-3, Phi-4-mini-style checkpoints without partial rotary): the
//! pre-norm decoder with q, k and v fused into `qkv_proj` and gate and up into
//! `gate_up_proj`, and a sliding window on every layer when the config sets one.
//! `longrope`/`su` rope scaling is refused by the config parser.

use super::OnLayer;
use crate::config::ModelConfig;
use crate::error::LoadError;
use crate::model::build::Loader;
use crate::model::layers::attention::{Attention, QkNorm, QkvNames};
use crate::model::layers::decoder::{build_pre_norm, PreNormDecoder};
use crate::model::layers::mlp::GatedMlp;
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
        &|p, i| {
            Attention::load(
                ld,
                c,
                QkvNames::Fused(&format!("{p}.self_attn.qkv_proj.weight")),
                &format!("{p}.self_attn.o_proj.weight"),
                QkNorm::IfPresent,
                c.family.window_of(i),
            )
        },
        &|p, _| {
            Ok(FeedForward::Dense(GatedMlp::load_fused(
                ld,
                &format!("{p}.mlp.gate_up_proj.weight"),
                &format!("{p}.mlp.down_proj.weight"),
                c.hidden_size,
                c.intermediate_size,
                c.family.activation,
            )?))
        },
    )
}
