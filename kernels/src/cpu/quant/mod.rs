//! Weight storage formats (ggml's block formats and plain floats) and their decoders.
//!
//! A weight row of `k` elements is `k / block_elems` blocks of `block_bytes` bytes. Decoders
//! turn whole rows into f32: the scalar ones are exact to ggml's reference dequantizers; the
//! SIMD ones (AVX2) compute the same operations in the same order without fusing, so they are
//! bit-identical to the scalar ones (tested). The matmul decodes a tile of rows into L1 and runs
//! f32 dot products over it, so the decode cost is paid once per row for the whole batch.

mod avx2;
mod scalar;
mod scalar_k;
pub mod synthetic;

use super::isa::Isa;

/// How the elements of a weight row are stored.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockFormat {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
}

impl BlockFormat {
    pub const ALL: [BlockFormat; 14] = {
        use BlockFormat::*;
        [
            F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K,
        ]
    };

    /// Elements per block.
    pub fn block_elems(self) -> usize {
        use BlockFormat::*;
        match self {
            F32 | F16 | BF16 => 1,
            Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 => 32,
            Q2_K | Q3_K | Q4_K | Q5_K | Q6_K | Q8_K => 256,
        }
    }

    /// Bytes per block (ggml's `type_size`).
    pub fn block_bytes(self) -> usize {
        use BlockFormat::*;
        match self {
            F32 => 4,
            F16 | BF16 => 2,
            Q4_0 => 18,
            Q4_1 => 20,
            Q5_0 => 22,
            Q5_1 => 24,
            Q8_0 => 34,
            Q2_K => 84,
            Q3_K => 110,
            Q4_K => 144,
            Q5_K => 176,
            Q6_K => 210,
            Q8_K => 292,
        }
    }

    /// ggml's name of the format.
    pub fn name(self) -> &'static str {
        use BlockFormat::*;
        match self {
            F32 => "F32",
            F16 => "F16",
            BF16 => "BF16",
            Q4_0 => "Q4_0",
            Q4_1 => "Q4_1",
            Q5_0 => "Q5_0",
            Q5_1 => "Q5_1",
            Q8_0 => "Q8_0",
            Q2_K => "Q2_K",
            Q3_K => "Q3_K",
            Q4_K => "Q4_K",
            Q5_K => "Q5_K",
            Q6_K => "Q6_K",
            Q8_K => "Q8_K",
        }
    }

    /// Bytes of a row of `k` elements, or `None` when `k` is not a whole number of blocks.
    pub fn row_bytes(self, k: usize) -> Option<usize> {
        if !k.is_multiple_of(self.block_elems()) {
            return None;
        }
        (k / self.block_elems()).checked_mul(self.block_bytes())
    }
}

impl std::fmt::Display for BlockFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Decodes whole rows with the reference (scalar) decoders. `src` must hold exactly the bytes
/// of `dst.len()` elements (callers check with [`BlockFormat::row_bytes`]); extra output is
/// left untouched rather than read out of bounds.
pub fn decode_scalar(format: BlockFormat, src: &[u8], dst: &mut [f32]) {
    use BlockFormat::*;
    match format {
        F32 => scalar::f32_rows(src, dst),
        F16 => scalar::f16_rows(src, dst),
        BF16 => scalar::bf16_rows(src, dst),
        Q4_0 => each_block(src, dst, scalar::q4_0),
        Q4_1 => each_block(src, dst, scalar::q4_1),
        Q5_0 => each_block(src, dst, scalar::q5_0),
        Q5_1 => each_block(src, dst, scalar::q5_1),
        Q8_0 => each_block(src, dst, scalar::q8_0),
        Q2_K => each_block(src, dst, scalar_k::q2_k),
        Q3_K => each_block(src, dst, scalar_k::q3_k),
        Q4_K => each_block(src, dst, scalar_k::q4_k),
        Q5_K => each_block(src, dst, scalar_k::q5_k),
        Q6_K => each_block(src, dst, scalar_k::q6_k),
        Q8_K => each_block(src, dst, scalar_k::q8_k),
    }
}

/// Decodes whole rows with the decoders of `isa` (bit-identical to [`decode_scalar`]).
pub fn decode(isa: Isa, format: BlockFormat, src: &[u8], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if isa >= Isa::Avx2 && avx2::decode(format, src, dst) {
        return;
    }
    let _ = isa;
    decode_scalar(format, src, dst)
}

/// `w · x` for one stored row decoded in registers, bitwise equal to decoding the row with
/// [`decode`] and running the dot kernel of `isa` on it. `None` where no fused kernel exists
/// (float formats, the scalar path, AVX-512's wider order): the caller decodes first.
#[inline]
pub(crate) fn fused_dot(isa: Isa, format: BlockFormat, row: &[u8], x: &[f32]) -> Option<f32> {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx2 {
        return avx2::fused_dot(format, row, x);
    }
    let _ = (isa, format, row, x);
    None
}

/// Runs `f` on each (block bytes, block output) pair as fixed-size arrays.
#[inline(always)]
pub(crate) fn each_block<const TS: usize, const BS: usize>(
    src: &[u8],
    dst: &mut [f32],
    f: impl Fn(&[u8; TS], &mut [f32; BS]),
) {
    for (s, d) in src.chunks_exact(TS).zip(dst.chunks_exact_mut(BS)) {
        // chunks_exact guarantees the lengths; the `if let` only avoids a panic path.
        if let (Some(s), Some(d)) = (s.first_chunk::<TS>(), d.first_chunk_mut::<BS>()) {
            f(s, d);
        }
    }
}

#[cfg(test)]
mod tests;
