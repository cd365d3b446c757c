use super::synthetic::{noise, random_blocks};
use super::*;

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
                    assert!(
                        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                        "{format} {isa} element {i}: {a} vs {b}"
                    );
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
