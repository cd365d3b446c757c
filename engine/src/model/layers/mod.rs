//! Building blocks shared by the architectures in `arch/`: attention, gated MLP, mixture of
//! experts, RMSNorm. Each reads its weights through [`Loader`](super::build::Loader) and runs
//! on a flattened token batch ([`Batch`]).

pub(crate) mod attention;
pub(crate) mod decoder;
pub(crate) mod mlp;
pub(crate) mod moe;
pub(crate) mod norm;

use kernels::cpu::AttentionSeq;

/// The new tokens of every sequence of a forward call, flattened into one row per token.
pub(crate) struct Batch<'a> {
    pub tokens: Vec<u32>,
    /// Absolute position of each row.
    pub positions: Vec<usize>,
    /// KV-cache slot (`block * block_size + offset`) of each row.
    pub slots: Vec<usize>,
    pub attn_seqs: Vec<AttentionSeq<'a>>,
}

impl Batch<'_> {
    pub fn rows(&self) -> usize {
        self.tokens.len()
    }
}
