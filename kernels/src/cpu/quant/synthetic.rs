//! Synthetic weight blocks for tests and benchmarks: random quant bits with finite scales of
//! the size real weights have.

use super::BlockFormat;

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

/// Byte offsets of the f16 scales in a block of `format` (everything else is quant bits).
fn f16_scale_offsets(format: BlockFormat) -> &'static [usize] {
    use BlockFormat::*;
    match format {
        Q4_0 | Q5_0 | Q8_0 => &[0],
        Q4_1 | Q5_1 | Q4_K | Q5_K => &[0, 2],
        Q2_K => &[80, 82],
        Q3_K => &[108],
        Q6_K => &[208],
        F32 | F16 | BF16 | Q8_K => &[],
    }
}

/// `blocks` random blocks of `format` whose scales (and float elements) are finite and of a
/// size real weights have, so that sums stay meaningful.
pub fn random_blocks(format: BlockFormat, blocks: usize, seed: u64) -> Vec<u8> {
    let bb = format.block_bytes();
    let mut bytes = noise(blocks * bb, seed);
    let small = |i: usize| ((i * 37 + seed as usize * 11) % 61) as f32 / 61.0 - 0.5;
    for b in 0..blocks {
        let blk = &mut bytes[b * bb..(b + 1) * bb];
        match format {
            BlockFormat::F32 => blk.copy_from_slice(&small(b).to_le_bytes()),
            BlockFormat::F16 => blk.copy_from_slice(&half::f16::from_f32(small(b)).to_le_bytes()),
            BlockFormat::BF16 => blk.copy_from_slice(&half::bf16::from_f32(small(b)).to_le_bytes()),
            BlockFormat::Q8_K => {
                blk[..4].copy_from_slice(&(0.01 + small(b).abs() * 0.02).to_le_bytes())
            }
            _ => {
                for (j, &off) in f16_scale_offsets(format).iter().enumerate() {
                    let v = 0.001 + 0.01 * small(b + 7 * j).abs();
                    blk[off..off + 2].copy_from_slice(&half::f16::from_f32(v).to_le_bytes());
                }
            }
        }
    }
    bytes
}
