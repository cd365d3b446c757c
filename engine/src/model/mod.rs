//! Decoder-only transformers (Llama, Qwen2, Qwen3) on the CPU backend.
//!
//! One forward call takes any number of sequences, each with any number of new tokens (a
//! prompt chunk or one decode token), flattened into one token batch: the matmuls see every
//! token at once, and attention reads each sequence's history through its block table.

mod build;
#[cfg(feature = "cuda")]
pub mod cuda;
mod rope;
#[cfg(test)]
mod tests;

use kernels::cpu::{self, AttentionSeq, PagedKvLayout, WeightMatrix};

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

pub(crate) struct Layer {
    pub input_norm: Vec<f32>,
    /// q, k and v projections stacked into one matrix: one pass over the activations.
    pub qkv: WeightMatrix,
    pub qkv_bias: Option<Vec<f32>>,
    pub q_norm: Option<Vec<f32>>,
    pub k_norm: Option<Vec<f32>>,
    pub o_proj: WeightMatrix,
    pub post_norm: Vec<f32>,
    /// gate and up projections stacked: rows `[gate; up]`.
    pub gate_up: WeightMatrix,
    pub down: WeightMatrix,
}

/// A loaded causal language model.
pub struct CausalLm {
    config: ModelConfig,
    embed: WeightMatrix,
    layers: Vec<Layer>,
    final_norm: Vec<f32>,
    lm_head: WeightMatrix,
    rotary: RotaryTable,
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
        self.rotary.max_positions()
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
            self.embed = e.clone();
            self.lm_head = e;
        }
        self.layers = Vec::new();
        self.gpu = Some(Box::new(gpu));
        Ok(())
    }

    /// Bytes of weight storage (tied embeddings counted once).
    pub fn weight_bytes(&self) -> usize {
        #[cfg(feature = "cuda")]
        if let Some(g) = &self.gpu {
            return g.weight_bytes();
        }
        let mut total = self.embed.size_bytes() + self.final_norm.len() * 4;
        if !self.config.tie_word_embeddings {
            total += self.lm_head.size_bytes();
        }
        for l in &self.layers {
            total += [&l.qkv, &l.o_proj, &l.gate_up, &l.down]
                .iter()
                .map(|w| w.size_bytes())
                .sum::<usize>();
            total += (l.input_norm.len() + l.post_norm.len()) * 4;
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
        let rows = hidden.data.len() / self.config.hidden_size.max(1);
        let mut data = vec![0.0f32; rows * self.config.vocab_size];
        cpu::matmul(&hidden.data, rows, &self.lm_head, &mut data);
        Ok(Logits {
            vocab_size: self.config.vocab_size,
            data,
            ranges: hidden.ranges,
        })
    }

    /// Like `forward`, but stops before the lm_head: the final-normed hidden states of the
    /// requested rows (`all_logits`: every new token, else the last). The pooling runner reads
    /// these. CPU backend only: the GPU model answers `ForwardError::Device`.
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
        let c = &self.config;
        let (d, hd) = (c.hidden_size, c.head_dim);
        let (nh, nkv) = (c.num_attention_heads, c.num_key_value_heads);
        let (q_dim, kv_dim) = (nh * hd, nkv * hd);
        let qkv_dim = q_dim + 2 * kv_dim;
        let inter = c.intermediate_size;
        let eps = c.rms_norm_eps as f32;
        let layout = kv.layout();
        let bs = layout.block_size;

        // Flatten the batch.
        let t_total: usize = seqs.iter().map(|s| s.tokens.len()).sum();
        let mut positions = Vec::with_capacity(t_total);
        let mut slots = Vec::with_capacity(t_total);
        let mut attn_seqs = Vec::with_capacity(seqs.len());
        let mut hidden = vec![0.0f32; t_total * d];
        let mut row = 0;
        for s in seqs {
            attn_seqs.push(AttentionSeq {
                q_start: row,
                n_q: s.tokens.len(),
                ctx_start: s.start_pos,
                block_table: s.block_table,
            });
            for (i, &tok) in s.tokens.iter().enumerate() {
                let p = s.start_pos + i;
                positions.push(p);
                slots.push(s.block_table[p / bs] as usize * bs + p % bs);
                self.embed
                    .row_into(tok as usize, &mut hidden[row * d..(row + 1) * d]);
                row += 1;
            }
        }

        let mut normed = vec![0.0f32; t_total * d];
        let mut qkv = vec![0.0f32; t_total * qkv_dim];
        let mut q = vec![0.0f32; t_total * q_dim];
        let mut k = vec![0.0f32; t_total * kv_dim];
        let mut v = vec![0.0f32; t_total * kv_dim];
        let mut attn = vec![0.0f32; t_total * q_dim];
        let mut proj = vec![0.0f32; t_total * d];
        let mut gate_up = vec![0.0f32; t_total * 2 * inter];
        let mut act = vec![0.0f32; t_total * inter];
        let scale = 1.0 / (hd as f32).sqrt();

        for (li, layer) in self.layers.iter().enumerate() {
            cpu::rms_norm(&hidden, &layer.input_norm, eps, &mut normed);
            cpu::matmul(&normed, t_total, &layer.qkv, &mut qkv);
            for t in 0..t_total {
                let r = &mut qkv[t * qkv_dim..(t + 1) * qkv_dim];
                if let Some(b) = &layer.qkv_bias {
                    cpu::add_assign(r, b);
                }
                q[t * q_dim..(t + 1) * q_dim].copy_from_slice(&r[..q_dim]);
                k[t * kv_dim..(t + 1) * kv_dim].copy_from_slice(&r[q_dim..q_dim + kv_dim]);
                v[t * kv_dim..(t + 1) * kv_dim].copy_from_slice(&r[q_dim + kv_dim..]);
            }
            if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
                cpu::rms_norm_inplace(&mut q, qn, eps);
                cpu::rms_norm_inplace(&mut k, kn, eps);
            }
            cpu::rope_neox_inplace(
                &mut q,
                nh,
                hd,
                &positions,
                self.rotary.cos(),
                self.rotary.sin(),
            );
            cpu::rope_neox_inplace(
                &mut k,
                nkv,
                hd,
                &positions,
                self.rotary.cos(),
                self.rotary.sin(),
            );
            let (k_store, v_store) = kv.layer_mut(li);
            kernels::cpu::write_kv(k_store, v_store, layout, &slots, &k, &v);
            cpu::paged_attention(
                &q, &attn_seqs, k_store, v_store, layout, nh, scale, &mut attn,
            );
            cpu::matmul(&attn, t_total, &layer.o_proj, &mut proj);
            cpu::add_assign(&mut hidden, &proj);

            cpu::rms_norm(&hidden, &layer.post_norm, eps, &mut normed);
            cpu::matmul(&normed, t_total, &layer.gate_up, &mut gate_up);
            cpu::silu_mul(&gate_up, inter, &mut act);
            cpu::matmul(&act, t_total, &layer.down, &mut proj);
            cpu::add_assign(&mut hidden, &proj);
        }

        // Only the rows whose logits were asked for go through the (large) lm_head.
        let mut picked = Vec::new();
        let mut ranges = Vec::with_capacity(seqs.len());
        let mut row0 = 0;
        for s in seqs {
            let n = s.tokens.len();
            let take = if s.all_logits {
                0..n
            } else {
                n.saturating_sub(1)..n
            };
            ranges.push((picked.len() / d, take.len()));
            for r in take {
                picked.extend_from_slice(&hidden[(row0 + r) * d..(row0 + r + 1) * d]);
            }
            row0 += n;
        }
        let mut normed = vec![0.0f32; picked.len()];
        cpu::rms_norm(&picked, &self.final_norm, eps, &mut normed);
        Ok(Hidden {
            hidden_size: d,
            data: normed,
            ranges,
        })
    }

    pub fn architecture(&self) -> Architecture {
        self.config.architecture
    }
}
