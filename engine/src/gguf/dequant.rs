//! ggml tensor data to `f32`.
//!
//! The block decoders live in the CPU kernels (`kernels::cpu::quant`), which also use them at
//! run time; they do the arithmetic in `f32` in the same order as ggml's reference
//! dequantizers, which makes the results bit-identical to gguf-py's. This module checks lengths
//! and spreads whole-tensor decodes over rayon at load time.

use kernels::cpu::quant::decode_scalar;
use kernels::cpu::BlockFormat;
use rayon::prelude::*;

use super::types::GgmlType;

/// Why a buffer could not be dequantized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DequantError {
    #[error("ggml type {0} cannot be dequantized")]
    Unsupported(GgmlType),
    #[error(
        "{ty}: {dst_len} output values need a multiple of {} and {} input bytes, got {src_len}",
        .ty.block_size(),
        expected_src_len(*.ty, *.dst_len).map_or("an impossible number of".to_string(), |n| n.to_string())
    )]
    Length {
        ty: GgmlType,
        src_len: usize,
        dst_len: usize,
    },
}

fn expected_src_len(ty: GgmlType, dst_len: usize) -> Option<usize> {
    if !dst_len.is_multiple_of(ty.block_size()) {
        return None;
    }
    (dst_len / ty.block_size()).checked_mul(ty.type_size())
}

/// The CPU kernels' name for a ggml type, for the types they can decode.
pub fn block_format(ty: GgmlType) -> Option<BlockFormat> {
    use GgmlType::*;
    Some(match ty {
        F32 => BlockFormat::F32,
        F16 => BlockFormat::F16,
        BF16 => BlockFormat::BF16,
        Q4_0 => BlockFormat::Q4_0,
        Q4_1 => BlockFormat::Q4_1,
        Q5_0 => BlockFormat::Q5_0,
        Q5_1 => BlockFormat::Q5_1,
        Q8_0 => BlockFormat::Q8_0,
        Q2_K => BlockFormat::Q2_K,
        Q3_K => BlockFormat::Q3_K,
        Q4_K => BlockFormat::Q4_K,
        Q5_K => BlockFormat::Q5_K,
        Q6_K => BlockFormat::Q6_K,
        Q8_K => BlockFormat::Q8_K,
        _ => return None,
    })
}

/// Output values per rayon task: big enough that scheduling is noise, small enough that a
/// 500k-element tensor still spreads over every core.
const TASK_ELEMS: usize = 1 << 15;

/// Dequantizes `src` (raw data of type `ty`) into `dst`. `dst.len()` must be a multiple of the
/// block size and `src.len()` exactly the bytes of `dst.len()` elements; anything else is an error,
/// never a panic. Large inputs run in parallel on rayon's pool (this is load time, not a step).
pub fn dequantize_into(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), DequantError> {
    let format = block_format(ty).ok_or(DequantError::Unsupported(ty))?;
    if expected_src_len(ty, dst.len()) != Some(src.len()) {
        return Err(DequantError::Length {
            ty,
            src_len: src.len(),
            dst_len: dst.len(),
        });
    }
    let blocks_per_task = (TASK_ELEMS / ty.block_size()).max(1);
    if dst.len() <= blocks_per_task * ty.block_size() {
        decode_scalar(format, src, dst);
    } else {
        src.par_chunks(blocks_per_task * ty.type_size())
            .zip(dst.par_chunks_mut(blocks_per_task * ty.block_size()))
            .for_each(|(s, d)| decode_scalar(format, s, d));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    fn f16_bytes(v: f32) -> [u8; 2] {
        f16::from_f32(v).to_le_bytes()
    }

    #[test]
    fn rejects_bad_lengths_without_panicking() {
        let mut out = vec![0f32; 64];
        let err = dequantize_into(GgmlType::Q4_0, &[0u8; 35], &mut out).unwrap_err();
        assert!(
            matches!(
                err,
                DequantError::Length {
                    src_len: 35,
                    dst_len: 64,
                    ..
                }
            ),
            "{err}"
        );
        let mut odd = vec![0f32; 33];
        assert!(dequantize_into(GgmlType::Q4_0, &[0u8; 36], &mut odd).is_err());
        assert!(dequantize_into(GgmlType::F32, &[0u8; 3], &mut out[..1]).is_err());
        assert!(dequantize_into(GgmlType::Q6_K, &[], &mut []).is_ok());
        let err = dequantize_into(GgmlType::IQ2_XXS, &[0u8; 66], &mut vec![0f32; 256]).unwrap_err();
        assert_eq!(err, DequantError::Unsupported(GgmlType::IQ2_XXS));
        assert!(err.to_string().contains("IQ2_XXS"));
    }

    #[test]
    fn q8_0_and_q4_0_by_hand() {
        let mut block = vec![0u8; 34];
        block[..2].copy_from_slice(&f16_bytes(0.5));
        for j in 0..32 {
            block[2 + j] = (j as i8 - 16) as u8;
        }
        let mut out = [0f32; 32];
        dequantize_into(GgmlType::Q8_0, &block, &mut out).unwrap();
        for (j, v) in out.iter().enumerate() {
            assert_eq!(*v, (j as f32 - 16.0) * 0.5);
        }

        let mut block = vec![0u8; 18];
        block[..2].copy_from_slice(&f16_bytes(2.0));
        block[2] = 0xF1; // element 0 = 1, element 16 = 15
        dequantize_into(GgmlType::Q4_0, &block, &mut out).unwrap();
        assert_eq!(
            (out[0], out[16], out[1]),
            ((1.0 - 8.0) * 2.0, (15.0 - 8.0) * 2.0, -16.0)
        );
    }

    #[test]
    fn parallel_path_matches_serial() {
        // Enough blocks to take the rayon path, with a distinct scale per block.
        let n_blocks = 3 * TASK_ELEMS / 32 + 7;
        let mut src = Vec::with_capacity(n_blocks * 34);
        for i in 0..n_blocks {
            src.extend_from_slice(&f16_bytes((i % 97) as f32 * 0.25));
            src.extend((0..32).map(|j| ((i * 31 + j * 7) % 256) as u8));
        }
        let mut par = vec![0f32; n_blocks * 32];
        dequantize_into(GgmlType::Q8_0, &src, &mut par).unwrap();
        let mut serial = vec![0f32; n_blocks * 32];
        decode_scalar(BlockFormat::Q8_0, &src, &mut serial);
        assert_eq!(par, serial);
    }

    #[test]
    fn float_types() {
        let vals = [1.5f32, -0.0, 3.0e-5, f32::INFINITY, 65504.0];
        let src: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut out = [0f32; 5];
        dequantize_into(GgmlType::F32, &src, &mut out).unwrap();
        assert_eq!(out.map(f32::to_bits), vals.map(f32::to_bits));

        let src: Vec<u8> = vals.iter().flat_map(|&v| f16_bytes(v)).collect();
        dequantize_into(GgmlType::F16, &src, &mut out).unwrap();
        assert_eq!(out, vals.map(|v| f16::from_f32(v).to_f32()));

        let src: Vec<u8> = vals
            .iter()
            .flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes())
            .collect();
        dequantize_into(GgmlType::BF16, &src, &mut out).unwrap();
        assert_eq!(
            out.map(f32::to_bits),
            vals.map(|v| v.to_bits() & 0xFFFF_0000)
        );
    }

    #[test]
    fn f16_unaligned_and_long() {
        let n = 1500;
        let mut src = vec![0u8; 1];
        src.extend((0..n).flat_map(|i| f16_bytes(i as f32 - 700.0)));
        let mut out = vec![0f32; n];
        dequantize_into(GgmlType::F16, &src[1..], &mut out).unwrap();
        assert!(out.iter().enumerate().all(|(i, &v)| v == i as f32 - 700.0));
    }
}
