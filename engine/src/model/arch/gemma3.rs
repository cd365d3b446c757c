//! `Gemma3ForCausalLM` (the text-only model): Gemma 2's sandwich layers plus per-head q/k
//! RMSNorm (Gemma's `1 + w` form), five sliding layers per global one by default
//! (`layer_types`), and two RoPE tables: `rope_theta` with `rope_scaling` for the global
//! layers, `rope_local_base_freq` unscaled for the sliding ones. No soft-capping unless the
//! config sets it.

use super::gemma2::{load_gemma, GemmaDecoder};
use super::OnLayer;
use crate::config::ModelConfig;
use crate::error::LoadError;
use crate::model::build::Loader;
use crate::model::layers::attention::QkNorm;
use crate::model::layers::norm::NormKind;
use crate::model::RotaryTable;

pub(crate) fn load(
    ld: &Loader<'_>,
    c: &ModelConfig,
    max_positions: usize,
    on_layer: OnLayer<'_>,
) -> Result<GemmaDecoder, LoadError> {
    let local_base = c.family.rope_local_base_freq.unwrap_or(10000.0);
    let local = RotaryTable::new(c.head_dim, local_base, None, max_positions);
    load_gemma(
        ld,
        c,
        max_positions,
        on_layer,
        QkNorm::Required(NormKind::OnePlus),
        Some(local),
    )
}
