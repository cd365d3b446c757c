//! Scalar decoders of the legacy 32-element block formats and the plain float rows, exact to
//! ggml's reference dequantizers (scale times quant, then the offset, in f32), so their output is
//! bit-identical to gguf-py's. They are the reference every SIMD decoder is tested against.

use half::f16;
use half::slice::HalfFloatSliceExt;

/// The little-endian f16 at byte `at` of a block, as f32 (exact).
#[inline(always)]
pub(crate) fn f16_at<const N: usize>(b: &[u8; N], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

pub(crate) fn f32_rows(src: &[u8], dst: &mut [f32]) {
    for (s, d) in src.chunks_exact(4).zip(dst.iter_mut()) {
        if let Some(s) = s.first_chunk::<4>() {
            *d = f32::from_le_bytes(*s);
        }
    }
}

pub(crate) fn f16_rows(src: &[u8], dst: &mut [f32]) {
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

pub(crate) fn bf16_rows(src: &[u8], dst: &mut [f32]) {
    // bf16 is the top half of an f32, so widening is a shift; NaN payloads survive unchanged.
    for (s, d) in src.chunks_exact(2).zip(dst.iter_mut()) {
        *d = f32::from_bits(u32::from(u16::from_le_bytes([s[0], s[1]])) << 16);
    }
}

// Legacy 32-element blocks. In all of them byte j of the packed nibbles holds element j in its
// low nibble and element j + 16 in its high nibble.

/// Q4_0: f16 d, 16 bytes of nibbles; x = d * (q - 8).
pub(crate) fn q4_0(b: &[u8; 18], y: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    for j in 0..16 {
        let q = b[2 + j];
        y[j] = ((q & 0x0F) as i32 - 8) as f32 * d;
        y[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
    }
}

/// Q4_1: f16 d, f16 m, 16 bytes of nibbles; x = d * q + m.
pub(crate) fn q4_1(b: &[u8; 20], y: &mut [f32; 32]) {
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
pub(crate) fn q5_0(b: &[u8; 22], y: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    let h = fifth_bits(b, 2);
    for j in 0..16 {
        let q = b[6 + j];
        y[j] = (((q & 0x0F) | h[j]) as i32 - 16) as f32 * d;
        y[j + 16] = (((q >> 4) | h[j + 16]) as i32 - 16) as f32 * d;
    }
}

/// Q5_1: f16 d, f16 m, u32 of fifth bits, nibbles; x = d * q + m.
pub(crate) fn q5_1(b: &[u8; 24], y: &mut [f32; 32]) {
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
pub(crate) fn q8_0(b: &[u8; 34], y: &mut [f32; 32]) {
    let d = f16_at(b, 0);
    for j in 0..32 {
        y[j] = (b[2 + j] as i8) as f32 * d;
    }
}
