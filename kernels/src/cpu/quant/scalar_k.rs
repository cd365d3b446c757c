//! Per-block dequantizers of the K-quants (256-element super-blocks).
//!
//! Shared pattern: a super-block is split into sub-blocks of 16 or 32 elements, each with a small
//! integer scale (and for some types a min) that is multiplied by the block's f16 super-scale
//! first. Output position `p` of the 256 is what the comments call an element index. Bit layouts
//! follow ggml's `block_q*_K` structs.

use super::scalar::f16_at;

/// Q2_K: 16 bytes of (scale | min << 4) per 16 elements, 64 bytes of 2-bit quants, f16 d, f16 dmin.
/// Quant byte `h*32 + l` holds elements `h*128 + s*32 + l` in bits `2s..2s+2`.
pub(crate) fn q2_k(b: &[u8; 84], y: &mut [f32; 256]) {
    let d = f16_at(b, 80);
    let dmin = f16_at(b, 82);
    let mut dl = [0f32; 16];
    let mut ml = [0f32; 16];
    for g in 0..16 {
        dl[g] = d * (b[g] & 0x0F) as f32;
        ml[g] = dmin * (b[g] >> 4) as f32;
    }
    for h in 0..2 {
        for s in 0..4 {
            for half in 0..2 {
                let g = h * 8 + s * 2 + half;
                let (scale, min) = (dl[g], ml[g]);
                for l in half * 16..half * 16 + 16 {
                    let q = (b[16 + h * 32 + l] >> (2 * s)) & 3;
                    y[h * 128 + s * 32 + l] = scale * q as f32 - min;
                }
            }
        }
    }
}

/// Q3_K: 32 bytes of high-bit masks, 64 bytes of low 2 bits, 12 bytes of 6-bit signed scales
/// (one per 16 elements), f16 d. The low bits are laid out as in Q2_K; mask byte `l` bit `j`
/// belongs to element `j*32 + l`, and a *clear* bit subtracts 4.
pub(crate) fn q3_k(b: &[u8; 110], y: &mut [f32; 256]) {
    let d = f16_at(b, 108);
    let sc = |i: usize| b[96 + i];
    let mut dl = [0f32; 16];
    for (i, out) in dl.iter_mut().enumerate() {
        // Low 4 bits: bytes 0..8, low nibbles for scales 0..8 and high nibbles for 8..16.
        // High 2 bits: bytes 8..12, bit pair i/4 of byte i%4.
        let low = if i < 8 { sc(i) & 0x0F } else { sc(i - 8) >> 4 };
        let high = (sc(8 + i % 4) >> (2 * (i / 4))) & 3;
        let scale = (low | high << 4) as i32 - 32;
        *out = d * scale as f32;
    }
    for h in 0..2 {
        for s in 0..4 {
            let bit = h * 4 + s;
            for half in 0..2 {
                let scale = dl[h * 8 + s * 2 + half];
                for l in half * 16..half * 16 + 16 {
                    let low = ((b[32 + h * 32 + l] >> (2 * s)) & 3) as i32;
                    let sub = if (b[l] >> bit) & 1 == 0 { 4 } else { 0 };
                    y[h * 128 + s * 32 + l] = scale * (low - sub) as f32;
                }
            }
        }
    }
}

/// The eight 6-bit (scale, min) pairs packed into 12 bytes, shared by Q4_K and Q5_K: pairs 0..4
/// are the low 6 bits of bytes 0..4 / 4..8; pairs 4..8 take their low 4 bits from the nibbles of
/// bytes 8..12 and their top 2 bits from the spare top bits of bytes 0..8. The 12 bytes sit at
/// offset 4 of the block in both types.
#[inline(always)]
pub(crate) fn scale_min_k4<const N: usize>(b: &[u8; N]) -> ([u8; 8], [u8; 8]) {
    let s = |i: usize| b[4 + i];
    let mut sc = [0u8; 8];
    let mut mn = [0u8; 8];
    for j in 0..4 {
        sc[j] = s(j) & 63;
        mn[j] = s(j + 4) & 63;
        sc[j + 4] = (s(j + 8) & 0x0F) | ((s(j) >> 6) << 4);
        mn[j + 4] = (s(j + 8) >> 4) | ((s(j + 4) >> 6) << 4);
    }
    (sc, mn)
}

/// Q4_K: f16 d, f16 dmin, 12 bytes of scales/mins (one pair per 32 elements), 128 bytes of
/// nibbles. Byte `32c + l` holds element `64c + l` (low nibble) and `64c + 32 + l` (high).
pub(crate) fn q4_k(b: &[u8; 144], y: &mut [f32; 256]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let (sc, mn) = scale_min_k4(b);
    for c in 0..4 {
        let (d1, m1) = (d * sc[2 * c] as f32, dmin * mn[2 * c] as f32);
        let (d2, m2) = (d * sc[2 * c + 1] as f32, dmin * mn[2 * c + 1] as f32);
        for l in 0..32 {
            let q = b[16 + 32 * c + l];
            y[64 * c + l] = d1 * (q & 0x0F) as f32 - m1;
            y[64 * c + 32 + l] = d2 * (q >> 4) as f32 - m2;
        }
    }
}

/// Q5_K: Q4_K plus 32 bytes of fifth bits (before the nibbles): byte `l` bit `j` belongs to
/// element `32j + l`.
pub(crate) fn q5_k(b: &[u8; 176], y: &mut [f32; 256]) {
    let d = f16_at(b, 0);
    let dmin = f16_at(b, 2);
    let (sc, mn) = scale_min_k4(b);
    for c in 0..4 {
        let (d1, m1) = (d * sc[2 * c] as f32, dmin * mn[2 * c] as f32);
        let (d2, m2) = (d * sc[2 * c + 1] as f32, dmin * mn[2 * c + 1] as f32);
        for l in 0..32 {
            let q = b[48 + 32 * c + l];
            let qh = b[16 + l];
            let lo = (q & 0x0F) | ((qh >> (2 * c)) & 1) << 4;
            let hi = (q >> 4) | ((qh >> (2 * c + 1)) & 1) << 4;
            y[64 * c + l] = d1 * lo as f32 - m1;
            y[64 * c + 32 + l] = d2 * hi as f32 - m2;
        }
    }
}

/// Q6_K: 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 i8 scales (one per 16
/// elements), f16 d; x = d * scale * (q - 32). Per 128-element half `h`, for `l` in 0..32: nibble
/// bytes `l` and `32 + l` give elements `l`, `32 + l` (low nibbles) and `64 + l`, `96 + l` (high
/// nibbles); high-bit byte `l` gives those four elements' top bits, two bits each, in that order.
pub(crate) fn q6_k(b: &[u8; 210], y: &mut [f32; 256]) {
    let d = f16_at(b, 208);
    let mut ds = [0f32; 16];
    for (g, out) in ds.iter_mut().enumerate() {
        *out = d * (b[192 + g] as i8) as f32;
    }
    for h in 0..2 {
        let (ql, qh, base) = (h * 64, 128 + h * 32, h * 128);
        for half in 0..2 {
            let g = h * 8 + half;
            let (s0, s1, s2, s3) = (ds[g], ds[g + 2], ds[g + 4], ds[g + 6]);
            for l in half * 16..half * 16 + 16 {
                let (a, c, hb) = (b[ql + l], b[ql + 32 + l], b[qh + l]);
                let q0 = ((a & 0x0F) | (hb & 3) << 4) as i32 - 32;
                let q1 = ((c & 0x0F) | ((hb >> 2) & 3) << 4) as i32 - 32;
                let q2 = ((a >> 4) | ((hb >> 4) & 3) << 4) as i32 - 32;
                let q3 = ((c >> 4) | ((hb >> 6) & 3) << 4) as i32 - 32;
                y[base + l] = s0 * q0 as f32;
                y[base + 32 + l] = s1 * q1 as f32;
                y[base + 64 + l] = s2 * q2 as f32;
                y[base + 96 + l] = s3 * q3 as f32;
            }
        }
    }
}

/// Q8_K: f32 d, 256 i8, then 16 i16 block sums that only matter for dot products; x = d * q.
pub(crate) fn q8_k(b: &[u8; 292], y: &mut [f32; 256]) {
    let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    for j in 0..256 {
        y[j] = d * (b[4 + j] as i8) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_k_by_hand() {
        let mut b = [0u8; 292];
        b[..4].copy_from_slice(&0.25f32.to_le_bytes());
        for j in 0..256 {
            b[4 + j] = (j as u8).wrapping_sub(128);
        }
        let mut y = [0f32; 256];
        q8_k(&b, &mut y);
        for (j, v) in y.iter().enumerate() {
            assert_eq!(*v, 0.25 * ((j as u8).wrapping_sub(128) as i8) as f32);
        }
    }

    #[test]
    fn scale_min_unpacking() {
        // Pair 5: scale low nibble from byte 9 (0x0A), top bits from byte 1 (0b11 -> 0x30);
        // min high nibble of byte 9 (0x0B), top bits from byte 5 (0b10 -> 0x20).
        let mut b = [0u8; 16];
        b[4 + 1] = 0b1100_0111;
        b[4 + 5] = 0b1000_0011;
        b[4 + 9] = 0xBA;
        let (sc, mn) = scale_min_k4(&b);
        assert_eq!((sc[1], mn[1]), (7, 3));
        assert_eq!((sc[5], mn[5]), (0x3A, 0x2B));
    }
}
