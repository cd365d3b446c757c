//! The CPU backend: f32 activations, weights in their stored formats (GGUF blocks, half,
//! float) decoded in L1 as they are used, one persistent worker pool, and kernels for each
//! instruction set picked at run time ([`isa`]).
//!
//! Every function here works on plain slices in row-major order, so the engine can drive it
//! without a tensor type.

mod attention;
mod dot;
mod elementwise;
pub mod isa;
mod matmul;
pub mod pool;
pub mod quant;
mod simd;
mod weights;

pub use attention::{
    paged_attention, paged_attention_with, write_kv, AttentionParams, AttentionSeq, PagedKvLayout,
};
pub use elementwise::{
    add_assign, gelu_tanh_mul, rms_norm, rms_norm_inplace, rope_neox_inplace, silu_mul,
    softcap_inplace,
};
pub use isa::Isa;
pub use matmul::{matmul, matmul_with};
pub use quant::BlockFormat;
pub use simd::dot;
pub use weights::{RowPart, ShapeError, SharedBytes, WeightDtype, WeightMatrix};
