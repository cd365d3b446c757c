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

    /// Sizes the cache as vLLM does: run the largest step the scheduler can issue against a
    /// scratch cache just big enough for it, measure what it took, and give the KV cache what
    /// is left of `utilization` × total memory. The largest step is the full token budget
    /// `max_batched_tokens` spread over `max_num_seqs` sequences: every buffer sized by tokens
    /// is at its maximum, and so are the logits rows (one per sequence, `max_num_seqs` × vocab
    /// in f32, the largest single buffer of a step with a big vocabulary). cuBLAS's workspace
    /// was allocated when the device was opened, so it is part of the memory in use.
    pub fn plan_kv(
        &self,
        layout: PagedKvLayout,
        max_batched_tokens: usize,
        max_num_seqs: usize,
        utilization: f64,
    ) -> Result<GpuKvPlan, CudaError> {
        let per_block = self.kv_bytes_per_block(layout);
        let (free_before, total) = self.dev.mem_info()?;
        let lens = profile_lengths(max_batched_tokens, max_num_seqs, self.max_positions);
        let blocks_of: Vec<usize> = lens.iter().map(|n| n.div_ceil(layout.block_size)).collect();
        let blocks: usize = blocks_of.iter().sum();
        let mut scratch = self.alloc_kv(blocks, layout)?;
        let ids = vec![0u32; lens.iter().copied().max().unwrap_or(1)];
        let mut tables = Vec::with_capacity(lens.len());
        let mut next = 0u32;
        for &b in &blocks_of {
            tables.push((next..next + b as u32).collect::<Vec<u32>>());
            next += b as u32;
        }
        let seqs: Vec<SequenceInput<'_>> = lens
            .iter()
            .zip(&tables)
            .map(|(&n, table)| SequenceInput {
                tokens: &ids[..n],
                start_pos: 0,
                block_table: table,
                all_logits: false,
            })
            .collect();
        // The workspace of a forward call is allocated from the stream's memory pool and handed
        // back when the call returns; the peak is what the call itself reports.
        let peak = self
            .forward_on(&seqs, &mut scratch, layout, blocks)
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

/// The prompt lengths of the profiling step: `tokens` (the budget, at most the model's
/// positions) split as evenly as possible over `seqs` sequences (at most one per token).
fn profile_lengths(tokens: usize, seqs: usize, max_positions: usize) -> Vec<usize> {
    let tokens = tokens.max(1);
    let seqs = seqs.clamp(1, tokens);
    let (each, extra) = (tokens / seqs, tokens % seqs);
    (0..seqs)
        .map(|i| (each + usize::from(i < extra)).min(max_positions.max(1)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::profile_lengths;

    #[test]
    fn the_profile_spends_the_whole_budget_over_max_num_seqs() {
        let lens = profile_lengths(8192, 256, 4096);
        assert_eq!(lens.len(), 256);
        assert_eq!(lens.iter().sum::<usize>(), 8192);
        assert!(lens.iter().all(|&n| n == 32));
        // Uneven split; fewer tokens than sequences gives one token each.
        assert_eq!(profile_lengths(10, 4, 4096), vec![3, 3, 2, 2]);
        assert_eq!(profile_lengths(3, 256, 4096), vec![1, 1, 1]);
        // One sequence can never be longer than the model's positions.
        assert_eq!(profile_lengths(5000, 1, 4096), vec![4096]);
    }
}
