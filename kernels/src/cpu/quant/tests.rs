use super::*;

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub(crate) fn noise(n: usize, seed: u64) -> Vec<u8> {
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
pub(crate) fn random_blocks(format: BlockFormat, blocks: usize, seed: u64) -> Vec<u8> {
    let bb = format.block_bytes();
    let mut bytes = noise(blocks * bb, seed);
    let small = |i: usize| ((i * 37 + seed as usize * 11) % 61) as f32 / 61.0 - 0.5;
    for b in 0..blocks {
        let blk = &mut bytes[b * bb..(b + 1) * bb];
        match format {
            BlockFormat::F32 => blk.copy_from_slice(&small(b).to_le_bytes()),
            BlockFormat::F16 => blk.copy_from_slice(&half::f16::from_f32(small(b)).to_le_bytes()),
            BlockFormat::BF16 => blk.copy_from_slice(&half::bf16::from_f32(small(b)).to_le_bytes()),
            BlockFormat::Q8_K => blk[..4].copy_from_slice(&(0.01 + small(b).abs() * 0.02).to_le_bytes()),
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

#[test]
fn simd_decoders_are_bit_identical_to_scalar() {
    for format in BlockFormat::ALL {
        let blocks = 9;
        let src = random_blocks(format, blocks, 3);
        // Raw noise too (NaN/Inf scales and elements): the decoders must still agree.
        let raw = noise(blocks * format.block_bytes(), 5);
        for bytes in [&src, &raw] {
            let n = blocks * format.block_elems();
            let mut want = vec![0f32; n];
            decode_scalar(format, bytes, &mut want);
            for isa in Isa::available() {
                let mut got = vec![0f32; n];
                decode(isa, format, bytes, &mut got);
                for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "{format} {isa} element {i}: {a} vs {b}");
                }
            }
        }
    }
}

#[test]
fn geometry_matches_ggml() {
    // ggml's type_size / block size (ggml.c type traits).
    assert_eq!(BlockFormat::Q4_K.row_bytes(512), Some(288));
    assert_eq!(BlockFormat::Q6_K.row_bytes(256), Some(210));
    assert_eq!(BlockFormat::Q8_0.row_bytes(64), Some(68));
    assert_eq!(BlockFormat::Q4_0.row_bytes(33), None);
    assert_eq!(BlockFormat::F16.row_bytes(3), Some(6));
}
