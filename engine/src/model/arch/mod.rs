//! One file per architecture, as vLLM's `model_executor/models/` and candle-transformers'
//! `models/` are laid out: each says which tensors its checkpoints hold and how the shared
//! layers (`model/layers/`) are put together; [`CausalLm`](super::CausalLm) wraps any of them
//! with the lm_head.

pub(crate) mod gemma2;
pub(crate) mod gemma3;
pub(crate) mod llama;
pub(crate) mod mistral;
pub(crate) mod mixtral;
pub(crate) mod phi3;
pub(crate) mod qwen3_moe;

use kernels::cpu::WeightMatrix;

use super::build::Loader;
use super::layers::decoder::PreNormDecoder;
use super::layers::Batch;
use crate::config::{Architecture, ModelConfig};
use crate::error::LoadError;
use crate::kv_cache::KvCache;

/// The body of a causal LM: embeddings through the final norm.
pub(crate) trait DecoderModel: Send + Sync {
    /// The final-normed hidden state of every row of the batch (`rows × hidden_size`),
    /// writing the rows' K/V into `kv`.
    fn hidden_states(&self, b: &Batch<'_>, kv: &mut KvCache) -> Vec<f32>;
    /// The input embeddings (the lm_head when the embeddings are tied).
    fn embed(&self) -> &WeightMatrix;
    /// Bytes of weights, embeddings included.
    fn weight_bytes(&self) -> usize;
    /// Positions the rotary tables cover.
    fn max_positions(&self) -> usize;
    /// The Llama-family stack, which the CUDA backend can run.
    fn as_pre_norm(&self) -> Option<&PreNormDecoder> {
        None
    }
}

/// Reports progress after each decoder layer: `(done, total)`.
pub(crate) type OnLayer<'a> = &'a dyn Fn(usize, usize);

/// Builds the body of `c.architecture` from `ld`.
pub(crate) fn load(
    ld: &Loader<'_>,
    c: &ModelConfig,
    max_positions: usize,
    on_layer: OnLayer<'_>,
) -> Result<Box<dyn DecoderModel>, LoadError> {
    Ok(match c.architecture {
        Architecture::Llama | Architecture::Qwen2 | Architecture::Qwen3 => {
            Box::new(llama::load(ld, c, max_positions, on_layer)?)
        }
        Architecture::Mistral => Box::new(mistral::load(ld, c, max_positions, on_layer)?),
        Architecture::Gemma2 => Box::new(gemma2::load(ld, c, max_positions, on_layer)?),
        Architecture::Gemma3 => Box::new(gemma3::load(ld, c, max_positions, on_layer)?),
        Architecture::Phi3 => Box::new(phi3::load(ld, c, max_positions, on_layer)?),
        Architecture::Mixtral => Box::new(mixtral::load(ld, c, max_positions, on_layer)?),
        Architecture::Qwen3Moe => Box::new(qwen3_moe::load(ld, c, max_positions, on_layer)?),
    })
}

/// What stays of the CPU body once the weights moved to the GPU (nothing to run).
pub(crate) struct Released {
    pub embed: WeightMatrix,
    pub max_positions: usize,
}

impl DecoderModel for Released {
    fn hidden_states(&self, _b: &Batch<'_>, _kv: &mut KvCache) -> Vec<f32> {
        Vec::new()
    }

    fn embed(&self) -> &WeightMatrix {
        &self.embed
    }

    fn weight_bytes(&self) -> usize {
        0
    }

    fn max_positions(&self) -> usize {
        self.max_positions
    }
}
