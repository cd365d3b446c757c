//! The paged KV cache in GPU memory (bf16, the CPU layout `[block][kv_head][slot][head_dim]`)
//! and its sizing from `--gpu-memory-utilization`.

use kernels::cpu::PagedKvLayout;
use kernels::cuda::CudaError;

use super::{Bf16Buf, GpuModel};
use crate::model::SequenceInput;

pub struct GpuKvCache {
    pub(super) k: Vec<Bf16Buf>,
    pub(super) v: Vec<Bf16Buf>,
}

/// The outcome of sizing: what `vllmd` reports at start-up.
#[derive(Debug, Clone, Copy)]
pub struct GpuKvPlan {
    pub num_blocks: usize,
    pub bytes_per_block: usize,
    /// Bytes the profiling forward pass needed beyond the weights (activations, workspace).
    pub activation_bytes: usize,
    pub total_bytes: usize,
    pub used_before_kv: usize,
}

impl GpuModel {
    /// K and V bytes of one block over all layers (bf16 elements).
    pub fn kv_bytes_per_block(&self, layout: PagedKvLayout) -> usize {
        2 * self.layers.len() * layout.block_len() * 2
    }

    /// Allocates the cache.
    pub fn alloc_kv(
        &self,
        num_blocks: usize,
        layout: PagedKvLayout,
    ) -> Result<GpuKvCache, CudaError> {
        let len = num_blocks * layout.block_len();
        let mut k = Vec::with_capacity(self.layers.len());
        let mut v = Vec::with_capacity(self.layers.len());
        for _ in 0..self.layers.len() {
            k.push(self.dev.alloc_zeros::<u16>(len)?);
            v.push(self.dev.alloc_zeros::<u16>(len)?);
        }
        Ok(GpuKvCache { k, v })
    }

    /// Sizes the cache as vLLM does: run one forward pass of `max_batched_tokens` tokens (a
    /// single prompt, the largest step the scheduler can issue) against a scratch cache just
    /// big enough for it, measure what it took, and give the KV cache what is left of
    /// `utilization` × total memory.
    pub fn plan_kv(
        &self,
        layout: PagedKvLayout,
        max_batched_tokens: usize,
        utilization: f64,
    ) -> Result<GpuKvPlan, CudaError> {
        let per_block = self.kv_bytes_per_block(layout);
        let tokens = max_batched_tokens.clamp(1, self.max_positions);
        let blocks = tokens.div_ceil(layout.block_size);
        let (free_before, total) = self.dev.mem_info()?;
        let mut scratch = self.alloc_kv(blocks, layout)?;
        let ids = vec![0u32; tokens];
        let table: Vec<u32> = (0..blocks as u32).collect();
        let seq = SequenceInput {
            tokens: &ids,
            start_pos: 0,
            block_table: &table,
            all_logits: false,
        };
        // The workspace of a forward call is allocated from the stream's memory pool and handed
        // back when the call returns; the peak is what the call itself reports.
        let peak = self
            .forward_on(&[seq], &mut scratch, layout, blocks)
            .map_err(|e| CudaError::Invalid {
                what: "profiling forward pass",
                detail: e.to_string(),
            })?
            .1;
        drop(scratch);
        self.dev.synchronize()?;
        let used_before_kv = total.saturating_sub(free_before);
        let budget = (total as f64 * utilization) as usize;
        let kv_bytes = budget.saturating_sub(used_before_kv + peak);
        Ok(GpuKvPlan {
            num_blocks: kv_bytes / per_block.max(1),
            bytes_per_block: per_block,
            activation_bytes: peak,
            total_bytes: total,
            used_before_kv,
        })
    }
}
