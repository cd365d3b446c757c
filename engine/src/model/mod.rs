//! Decoder-only transformers on the CPU backend: one file per architecture in `arch/`, built
//! from the shared layers in `layers/`, wrapped by [`CausalLm`] with the lm_head.
//!
//! One forward call takes any number of sequences, each with any number of new tokens (a
//! prompt chunk or one decode token), flattened into one token batch: the matmuls see every
//! token at once, and attention reads each sequence's history through its block table.

mod arch;
pub(crate) mod build;
#[cfg(feature = "cuda")]
pub mod cuda;
pub(crate) mod layers;
mod rope;
#[cfg(test)]
mod tests;

use kernels::cpu::{self, AttentionSeq, PagedKvLayout, WeightMatrix};

use arch::DecoderModel;
use layers::Batch;

pub use build::{RawTensor, TensorData, WeightSource};
pub use rope::RotaryTable;

use crate::config::{Architecture, ModelConfig};
use crate::kv_cache::KvCache;

/// Errors of a forward call: inputs the caller should have validated. Returned, never panicked,
/// so a bad request cannot take the engine down.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    #[error("token id {token} is outside the vocabulary (size {vocab_size})")]
    TokenOutOfVocab { token: u32, vocab_size: usize },
    #[error("position {position} exceeds the model's maximum of {max} positions")]
    PositionOutOfRange { position: usize, max: usize },
    #[error("sequence of {needed} tokens needs {blocks_needed} blocks but its block table has {blocks_given}")]
    BlockTableTooShort {
        needed: usize,
        blocks_needed: usize,
        blocks_given: usize,
    },
    #[error("block {block} is outside the KV cache ({num_blocks} blocks)")]
    BlockOutOfRange { block: u32, num_blocks: usize },
    #[error("KV cache geometry does not match the model")]
    KvCacheMismatch,
    /// The GPU failed (a driver, cuBLAS or launch error); the message carries the context.
    #[error("GPU: {0}")]
    Device(String),
}

/// The new tokens of one sequence in a forward call.
#[derive(Debug, Clone)]
pub struct SequenceInput<'a> {
    pub tokens: &'a [u32],
    /// Number of tokens of this sequence already in the KV cache (the first new token's position).
    pub start_pos: usize,
    /// Physical KV blocks of the sequence, covering at least `start_pos + tokens.len()` tokens.
    pub block_table: &'a [u32],
    /// Logits for every new token (prompt logprobs) instead of only the last one.
    pub all_logits: bool,
}

/// Logits of a forward call: rows of `vocab_size`, grouped by sequence in input order.
#[derive(Debug, Clone)]
pub struct Logits {
    pub vocab_size: usize,
    pub data: Vec<f32>,
    /// (first row, row count) of each sequence.
    pub ranges: Vec<(usize, usize)>,
}

/// Final-normed hidden states of a forward call: rows of `hidden_size`, grouped by sequence
/// in input order, as in [`Logits`].
#[derive(Debug, Clone)]
pub struct Hidden {
    pub hidden_size: usize,
    pub data: Vec<f32>,
    /// (first row, row count) of each sequence.
    pub ranges: Vec<(usize, usize)>,
}

impl Hidden {
    /// All rows of sequence `i`.
    pub fn sequence(&self, i: usize) -> &[f32] {
        let (r0, n) = self.ranges[i];
        &self.data[r0 * self.hidden_size..(r0 + n) * self.hidden_size]
    }
}

impl Logits {
    /// All rows of sequence `i`.
    pub fn sequence(&self, i: usize) -> &[f32] {
        let (r0, n) = self.ranges[i];
        &self.data[r0 * self.vocab_size..(r0 + n) * self.vocab_size]
    }

    /// The last row of sequence `i` (the next-token distribution).
    pub fn last(&self, i: usize) -> &[f32] {
        let (r0, n) = self.ranges[i];
        let r = r0 + n - 1;
        &self.data[r * self.vocab_size..(r + 1) * self.vocab_size]
    }
}

/// A loaded causal language model.
pub struct CausalLm {
    config: ModelConfig,
    /// Embeddings through the final norm (`None` once the model moved to the GPU).
    body: Box<dyn DecoderModel>,
    lm_head: WeightMatrix,
    /// Gemma 2's final logit soft-cap.
    final_softcap: Option<f32>,
    /// Set by `attach_cuda`: the model then runs on the GPU and the host weights are dropped.
    #[cfg(feature = "cuda")]
    gpu: Option<Box<cuda::GpuModel>>,
}

impl CausalLm {
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Largest position + 1 the rotary table covers (the served `max_model_len`).
    pub fn max_positions(&self) -> usize {
        self.body.max_positions()
    }

    /// Which backend runs `forward`.
    pub fn backend(&self) -> crate::device::Backend {
        #[cfg(feature = "cuda")]
        if self.gpu.is_some() {
            return crate::device::Backend::Cuda;
        }
        crate::device::Backend::Cpu
    }

    /// The GPU model, once attached.
    #[cfg(feature = "cuda")]
    pub fn gpu(&self) -> Option<&cuda::GpuModel> {
        self.gpu.as_deref()
    }

    /// Moves the model to GPU `ordinal` (bf16 weights) and frees the host copies: from here
    /// on `forward` runs on the GPU and needs a KV cache made by `KvCache::on_gpu`.
    #[cfg(feature = "cuda")]
    pub fn attach_cuda(&mut self, ordinal: usize) -> Result<(), kernels::cuda::CudaError> {
        let gpu = cuda::GpuModel::upload(self, ordinal)?;
        if let Ok(e) = WeightMatrix::from_f32(0, 0, Vec::new(), kernels::cpu::WeightDtype::F32) {
            self.lm_head = e.clone();
            self.body = Box::new(arch::Released {
                embed: e,
                max_positions: self.body.max_positions(),
            });
        }
        self.gpu = Some(Box::new(gpu));
        Ok(())
    }

    /// Bytes of weight storage (tied embeddings counted once).
    pub fn weight_bytes(&self) -> usize {
        #[cfg(feature = "cuda")]
        if let Some(g) = &self.gpu {
            return g.weight_bytes();
        }
        let mut total = self.body.weight_bytes();
        if !self.config.tie_word_embeddings {
            total += self.lm_head.size_bytes();
        }
        total
    }

    /// The KV layout this model needs for a given block size.
    pub fn kv_layout(&self, block_size: usize) -> PagedKvLayout {
        PagedKvLayout {
            block_size,
            kv_heads: self.config.num_key_value_heads,
            head_dim: self.config.head_dim,
        }
    }

    fn validate(&self, seqs: &[SequenceInput<'_>], kv: &KvCache) -> Result<(), ForwardError> {
        let c = &self.config;
        if kv.num_layers() != c.num_hidden_layers
            || kv.layout().kv_heads != c.num_key_value_heads
            || kv.layout().head_dim != c.head_dim
        {
            return Err(ForwardError::KvCacheMismatch);
        }
        let bs = kv.layout().block_size;
        for s in seqs {
            if let Some(&token) = s.tokens.iter().find(|t| **t as usize >= c.vocab_size) {
                return Err(ForwardError::TokenOutOfVocab {
                    token,
                    vocab_size: c.vocab_size,
                });
            }
            let end = s.start_pos + s.tokens.len();
            if end > self.max_positions() {
                return Err(ForwardError::PositionOutOfRange {
                    position: end - 1,
                    max: self.max_positions(),
                });
            }
            let blocks_needed = end.div_ceil(bs);
            if s.block_table.len() < blocks_needed {
                return Err(ForwardError::BlockTableTooShort {
                    needed: end,
                    blocks_needed,
                    blocks_given: s.block_table.len(),
                });
            }
            if let Some(&block) = s.block_table[..blocks_needed]
                .iter()
                .find(|b| **b as usize >= kv.num_blocks())
            {
                return Err(ForwardError::BlockOutOfRange {
                    block,
                    num_blocks: kv.num_blocks(),
                });
            }
        }
        Ok(())
    }

    /// Runs the new tokens of every sequence through the model, writing their K/V into `kv`,
    /// and returns the requested logits.
    pub fn forward(
        &self,
        seqs: &[SequenceInput<'_>],
        kv: &mut KvCache,
    ) -> Result<Logits, ForwardError> {
        #[cfg(feature = "cuda")]
        if let Some(g) = &self.gpu {
            self.validate(seqs, kv)?;
            let (layout, num_blocks) = (kv.layout(), kv.num_blocks());
            let gkv = kv.gpu_mut().ok_or(ForwardError::KvCacheMismatch)?;
            return g
                .forward_on(seqs, gkv, layout, num_blocks)
                .map(|(logits, _)| logits)
                .map_err(|e| ForwardError::Device(e.to_string()));
        }
        let hidden = self.hidden_states(seqs, kv)?;
        let c = &self.config;
        let rows = hidden.data.len() / c.hidden_size.max(1);
        // Only the rows whose logits were asked for go through the (large) lm_head.
        let mut data = vec![0.0f32; rows * c.vocab_size];
        cpu::matmul(&hidden.data, rows, &self.lm_head, &mut data);
        if let Some(cap) = self.final_softcap {
            cpu::softcap_inplace(&mut data, cap);
        }
        Ok(Logits {
            vocab_size: c.vocab_size,
            data,
            ranges: hidden.ranges,
        })
    }

    /// Like `forward`, but stops before the lm_head: the final-normed hidden states of the
    /// requested rows (`all_logits`: every new token, else the last), writing their K/V into
    /// `kv`. The pooling runner reads these. CPU backend only: the GPU model answers
    /// `ForwardError::Device`.
    pub fn hidden_states(
        &self,
        seqs: &[SequenceInput<'_>],
        kv: &mut KvCache,
    ) -> Result<Hidden, ForwardError> {
        self.validate(seqs, kv)?;
        #[cfg(feature = "cuda")]
        if self.gpu.is_some() {
            return Err(ForwardError::Device(
                "hidden states (the pooling runner) are not available on the CUDA backend yet"
                    .into(),
            ));
        }
        let d = self.config.hidden_size;
        let batch = Self::batch(seqs, kv.layout().block_size);
        let all = self.body.hidden_states(&batch, kv);
        let mut data = Vec::new();
        let mut ranges = Vec::with_capacity(seqs.len());
        let mut row0 = 0;
        for s in seqs {
            let n = s.tokens.len();
            let take = if s.all_logits {
                0..n
            } else {
                n.saturating_sub(1)..n
            };
            ranges.push((data.len() / d, take.len()));
            for r in take {
                data.extend_from_slice(&all[(row0 + r) * d..(row0 + r + 1) * d]);
            }
            row0 += n;
        }
        Ok(Hidden {
            hidden_size: d,
            data,
            ranges,
        })
    }

    /// The batch's tokens flattened, with their positions, KV slots and attention ranges.
    fn batch<'a>(seqs: &[SequenceInput<'a>], bs: usize) -> Batch<'a> {
        let t_total: usize = seqs.iter().map(|s| s.tokens.len()).sum();
        let mut b = Batch {
            tokens: Vec::with_capacity(t_total),
            positions: Vec::with_capacity(t_total),
            slots: Vec::with_capacity(t_total),
            attn_seqs: Vec::with_capacity(seqs.len()),
        };
        for s in seqs {
            b.attn_seqs.push(AttentionSeq {
                q_start: b.tokens.len(),
                n_q: s.tokens.len(),
                ctx_start: s.start_pos,
                block_table: s.block_table,
            });
            for (i, &tok) in s.tokens.iter().enumerate() {
                let p = s.start_pos + i;
                b.tokens.push(tok);
                b.positions.push(p);
                b.slots.push(s.block_table[p / bs] as usize * bs + p % bs);
            }
        }
        b
    }

    pub fn architecture(&self) -> Architecture {
        self.config.architecture
    }
}
