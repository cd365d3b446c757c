//! `Qwen3MoeForCausalLM`: Qwen3's attention (per-head q/k RMSNorm) with a sparse mixture of
//! experts (`mlp.gate` router, `mlp.experts.{e}.{gate,up,down}_proj`) on every
//! `decoder_sparse_step`-th layer not listed in `mlp_only_layers`; top-k weights renormalised
//! only when `norm_topk_prob` is set.

use super::OnLayer;
use crate::config::ModelConfig;
use crate::error::LoadError;
use crate::model::build::Loader;
use crate::model::layers::attention::{Attention, QkNorm, QkvNames};
use crate::model::layers::decoder::{build_pre_norm, dense_mlp, PreNormDecoder};
use crate::model::layers::moe::{FeedForward, SparseMoe};
use crate::model::layers::norm::NormKind;

pub(crate) fn load(
    ld: &Loader<'_>,
    c: &ModelConfig,
    max_positions: usize,
    on_layer: OnLayer<'_>,
) -> Result<PreNormDecoder, LoadError> {
    let moe = c.family.moe.as_ref().ok_or_else(|| LoadError::Config {
        path: ld.path().to_path_buf(),
        msg: "Qwen3MoeForCausalLM without expert parameters".into(),
    })?;
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
                QkNorm::Required(NormKind::Plain),
                None,
            )
        },
        &|p, i| {
            if !moe.is_sparse(i) {
                return Ok(FeedForward::Dense(dense_mlp(ld, c, p)?));
            }
            let names = ["gate_proj", "up_proj", "down_proj"];
            let block = format!("{p}.mlp");
            Ok(FeedForward::Sparse(SparseMoe::load(
                ld, c, moe, &block, names,
            )?))
        },
    )
}
