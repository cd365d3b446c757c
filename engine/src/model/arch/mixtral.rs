//! `MixtralForCausalLM`: Mistral's attention with a sparse mixture of experts in place of the
//! MLP: `block_sparse_moe.gate` routes each token to `num_experts_per_tok` of
//! `num_local_experts` SwiGLU experts (`w1` gate, `w3` up, `w2` down), weights renormalised.

use super::mistral::windowed_attention;
use super::OnLayer;
use crate::config::ModelConfig;
use crate::error::LoadError;
use crate::model::build::Loader;
use crate::model::layers::decoder::{build_pre_norm, PreNormDecoder};
use crate::model::layers::moe::{FeedForward, SparseMoe};

pub(crate) fn load(
    ld: &Loader<'_>,
    c: &ModelConfig,
    max_positions: usize,
    on_layer: OnLayer<'_>,
) -> Result<PreNormDecoder, LoadError> {
    let moe = c.family.moe.as_ref().ok_or_else(|| LoadError::Config {
        path: ld.path().to_path_buf(),
        msg: "MixtralForCausalLM without expert parameters".into(),
    })?;
    build_pre_norm(
        ld,
        c,
        max_positions,
        on_layer,
        &|p, i| windowed_attention(ld, c, p, i),
        &|p, _| {
            let block = format!("{p}.block_sparse_moe");
            let names = ["w1", "w3", "w2"];
            Ok(FeedForward::Sparse(SparseMoe::load(
                ld, c, moe, &block, names,
            )?))
        },
    )
}
