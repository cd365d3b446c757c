//! The CPU backend: f32 activations, weights in f32/f16/bf16, multi-threaded with rayon.
//!
//! Every function here works on plain slices in row-major order, so the engine can drive it
//! without a tensor type, and a later CUDA backend can mirror the same operations.

mod attention;
mod elementwise;
mod matmul;
mod simd;

pub use attention::{paged_attention, write_kv, AttentionSeq, PagedKvLayout};
pub use elementwise::{add_assign, rms_norm, rms_norm_inplace, rope_neox_inplace, silu_mul};
pub use matmul::{matmul, ShapeError, WeightDtype, WeightMatrix, WeightStorage};
pub use simd::dot;
