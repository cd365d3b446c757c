//! ggml tensor data to `f32`.
//!
//! Each type has a per-block function over fixed-size arrays (`&[u8; TYPE_SIZE]` to
//! `&mut [f32; BLOCK]`), so bounds are known at compile time and the inner loops vectorise;
//! [`dequantize_into`] hands runs of blocks to rayon. The arithmetic is done in `f32` in the same
//! order as ggml's reference dequantizers (scale times scale first, then times the quant, then the
//! offset), which makes the results bit-identical to gguf-py's.

use half::f16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

use super::dequant_k;
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

/// Decodes whole blocks; `src` and `dst` hold the same number of blocks (checked by the caller).
type Kernel = fn(&[u8], &mut [f32]);

/// Output values per rayon task: big enough that scheduling is noise, small enough that a
/// 500k-element tensor still spreads over every core.
const TASK_ELEMS: usize = 1 << 15;

/// Dequantizes `src` (raw data of type `ty`) into `dst`. `dst.len()` must be a multiple of the
/// block size and `src.len()` exactly the bytes of `dst.len()` elements; anything else is an error,
/// never a panic. Large inputs run in parallel on rayon's pool.
pub fn dequantize_into(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), DequantError> {
    let kernel = kernel_for(ty).ok_or(DequantError::Unsupported(ty))?;
    if expected_src_len(ty, dst.len()) != Some(src.len()) {
        return Err(DequantError::Length {
            ty,
            src_len: src.len(),
            dst_len: dst.len(),
        });
    }
    let blocks_per_task = (TASK_ELEMS / ty.block_size()).max(1);
    if dst.len() <= blocks_per_task * ty.block_size() {
        kernel(src, dst);
    } else {
        src.par_chunks(blocks_per_task * ty.type_size())
            .zip(dst.par_chunks_mut(blocks_per_task * ty.block_size()))
            .for_each(|(s, d)| kernel(s, d));
    }
    Ok(())
}

fn kernel_for(ty: GgmlType) -> Option<Kernel> {
    use GgmlType::*;
    let kernel: Kernel = match ty {
        F32 => f32_rows,
        F16 => f16_rows,
        BF16 => bf16_rows,
        Q4_0 => |s, d| each_block(s, d, q4_0),
        Q4_1 => |s, d| each_block(s, d, q4_1),
        Q5_0 => |s, d| each_block(s, d, q5_0),
        Q5_1 => |s, d| each_block(s, d, q5_1),
        Q8_0 => |s, d| each_block(s, d, q8_0),
        Q2_K => |s, d| each_block(s, d, dequant_k::q2_k),
        Q3_K => |s, d| each_block(s, d, dequant_k::q3_k),
        Q4_K => |s, d| each_block(s, d, dequant_k::q4_k),
        Q5_K => |s, d| each_block(s, d, dequant_k::q5_k),
        Q6_K => |s, d| each_block(s, d, dequant_k::q6_k),
        Q8_K => |s, d| each_block(s, d, dequant_k::q8_k),
        _ => return None,
    };
    Some(kernel)
}

/// Runs `f` on each (block bytes, block output) pair as fixed-size arrays.
#[inline(always)]
pub(super) fn each_block<const TS: usize, const BS: usize>(
    src: &[u8],
    dst: &mut [f32],
    f: impl Fn(&[u8; TS], &mut [f32; BS]),
) {
    for (s, d) in src.chunks_exact(TS).zip(dst.chunks_exact_mut(BS)) {
        // chunks_exact guarantees the lengths, so these always match; the `if let` just avoids
        // a panic path.
        if let (Some(s), Some(d)) = (s.first_chunk::<TS>(), d.first_chunk_mut::<BS>()) {
            f(s, d);
        }
    }
}

/// The little-endian f16 at byte `at` of a block, as f32 (exact).
#[inline(always)]
pub(super) fn f16_at<const N: usize>(b: &[u8; N], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

fn f32_rows(src: &[u8], dst: &mut [f32]) {
    for (s, d) in src.chunks_exact(4).zip(dst.iter_mut()) {
        if let Some(s) = s.first_chunk::<4>() {
            *d = f32::from_le_bytes(*s);
        }
    }
}

fn f16_rows(src: &[u8], dst: &mut [f32]) {
    // Through an aligned scratch buffer, because the data may sit at an odd address and half's
    // slice conversion (which uses F16C when the CPU has it) wants a real `[f16]`.
    const TILE: usize = 512;
    let mut tmp = [f16::ZERO; TILE];
    for (s, d) in src.chunks(2 * TILE).zip(dst.chunks_mut(TILE)) {
        let n = d.len().min(TILE);
        for (t, b) in tmp.iter_mut().zip(s.chunks_exact(2)) {
            *t = f16::from_le_bytes([b[0], b[1]]);
        }
        tmp[..n].convert_to_f32_slice(&mut d[..n]);
    }
}

fn bf16_rows(src: &[u8], dst: &mut [f32]) {
    // bf16 is the top half of an f32, so widening is a shift; NaN payloads survive unchanged.
    for (s, d) in src.chunks_exact(2).zip(dst.iter_mut()) {
        *d = f32::from_bits(u32::from(u16::from_le_bytes([s[0], s[1]])) << 16);
    }
}

// Legacy 32-element blocks. In all of them byte j of the packed nibbles holds element j in its
// low nibble and element j + 16 in its high nibble.

/// Q4_0: f16 d, 16 bytes of nibbles; x = d * (q - 8).
fn q4_0(b: &[u8; 18], y: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    for j in 0..16 {
        let q = b[2 + j];
        y[j] = ((q & 0x0F) as i32 - 8) as f32 * d;
        y[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
    }
}

/// Q4_1: f16 d, f16 m, 16 bytes of nibbles; x = d * q + m.
fn q4_1(b: &[u8; 20], y: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    for j in 0..16 {
        let q = b[4 + j];
        y[j] = d * (q & 0x0F) as f32 + m;
        y[j + 16] = d * (q >> 4) as f32 + m;
    }
}

/// `FIFTH_BIT[v][i]` is bit `i` of byte `v`, moved to bit 4. Expanding the fifth bits of Q5_0 and
/// Q5_1 through this table keeps the per-element work to byte ops that vectorise on plain SSE2,
/// which has no per-lane variable shift.
static FIFTH_BIT: [[u8; 8]; 256] = {
    let mut table = [[0u8; 8]; 256];
    let mut v = 0;
    while v < 256 {
        let mut i = 0;
        while i < 8 {
            table[v][i] = (((v >> i) & 1) << 4) as u8;
            i += 1;
        }
        v += 1;
    }
    table
};

/// The 32 fifth bits of a Q5 block (a little-endian u32 at `at`), one byte (0 or 16) per element.
#[inline(always)]
fn fifth_bits<const N: usize>(b: &[u8; N], at: usize) -> [u8; 32] {
    let mut h = [0u8; 32];
    for k in 0..4 {
        h[8 * k..8 * k + 8].copy_from_slice(&FIFTH_BIT[b[at + k] as usize]);
    }
    h
}

/// Q5_0: f16 d, u32 of fifth bits (bit j for element j), nibbles; x = d * (q - 16).
fn q5_0(b: &[u8; 22], y: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    let h = fifth_bits(b, 2);
    for j in 0..16 {
        let q = b[6 + j];
        y[j] = (((q & 0x0F) | h[j]) as i32 - 16) as f32 * d;
        y[j + 16] = (((q >> 4) | h[j + 16]) as i32 - 16) as f32 * d;
    }
}

/// Q5_1: f16 d, f16 m, u32 of fifth bits, nibbles; x = d * q + m.
fn q5_1(b: &[u8; 24], y: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let h = fifth_bits(b, 4);
    for j in 0..16 {
        let q = b[8 + j];
        y[j] = d * ((q & 0x0F) | h[j]) as f32 + m;
        y[j + 16] = d * ((q >> 4) | h[j + 16]) as f32 + m;
    }
}

/// Q8_0: f16 d, 32 i8; x = d * q.
fn q8_0(b: &[u8; 34], y: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    for j in 0..32 {
        y[j] = (b[2 + j] as i8) as f32 * d;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        each_block(&src, &mut serial, q8_0);
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
