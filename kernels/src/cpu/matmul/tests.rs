use super::*;
use crate::cpu::quant::synthetic::random_blocks;
use crate::cpu::weights::{RowPart, SharedBytes, WeightDtype};

fn activations(m: usize, k: usize, seed: usize) -> Vec<f32> {
    (0..m * k)
        .map(|i| (((i * 7919 + seed * 31) % 997) as f32 - 498.0) / 400.0)
        .collect()
}

fn matrix(format: BlockFormat, n: usize, k: usize, seed: u64) -> WeightMatrix {
    let bytes = random_blocks(format, n * k / format.block_elems(), seed);
    let part = RowPart::new(format, n, k, SharedBytes::from_vec(bytes), None).unwrap();
    WeightMatrix::from_parts(k, vec![part]).unwrap()
}

/// The product in f64 over the reference (scalar) decode of the weights.
fn reference(x: &[f32], m: usize, w: &WeightMatrix) -> Vec<f64> {
    let (n, k) = (w.rows(), w.cols());
    let slices = w.part_slices();
    let mut out = vec![0f64; m * n];
    let mut row = vec![0f32; k];
    for j in 0..n {
        let (format, bytes) = w.row_bytes_of(&slices, j);
        quant::decode_scalar(format, bytes, &mut row);
        for t in 0..m {
            out[t * n + j] = row
                .iter()
                .zip(&x[t * k..(t + 1) * k])
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum();
        }
    }
    out
}

#[test]
fn every_format_and_isa_matches_the_reference() {
    let pool = WorkerPool::new(2, &[]);
    for format in BlockFormat::ALL {
        let k = 512;
        let (n, m) = (13, 5);
        let w = matrix(format, n, k, 11);
        let x = activations(m, k, 1);
        let want = reference(&x, m, &w);
        let scale = want.iter().fold(0f64, |a, b| a.max(b.abs())).max(1e-3);
        for isa in Isa::available() {
            let mut got = vec![0f32; m * n];
            matmul_with(isa, &pool, &x, m, &w, &mut got);
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (*a as f64 - b).abs() <= 1e-5 * scale,
                    "{format} {isa} out[{i}]: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn outputs_are_bitwise_independent_of_the_batch() {
    let pool = WorkerPool::new(2, &[]);
    for format in BlockFormat::ALL {
        let (n, k) = (37, 256);
        let w = matrix(format, n, k, 5);
        let x = activations(16, k, 2);
        for isa in Isa::available() {
            let mut batched = vec![0f32; 16 * n];
            matmul_with(isa, &pool, &x, 16, &w, &mut batched);
            for t in [0usize, 4, 15] {
                let mut alone = vec![0f32; n];
                matmul_with(isa, &pool, &x[t * k..(t + 1) * k], 1, &w, &mut alone);
                let same = alone
                    .iter()
                    .zip(&batched[t * n..(t + 1) * n])
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same,
                    "{format} {isa}: row {t} differs alone vs in a batch of 16"
                );
            }
            let single = WorkerPool::new(1, &[]);
            let mut one_thread = vec![0f32; 16 * n];
            matmul_with(isa, &single, &x, 16, &w, &mut one_thread);
            assert_eq!(
                one_thread, batched,
                "{format} {isa}: thread count changed the result"
            );
        }
    }
}

#[test]
fn stacked_parts_with_row_order() {
    let k = 64;
    let a = matrix(BlockFormat::Q8_0, 4, k, 1);
    let b = matrix(BlockFormat::F16, 3, k, 2);
    let order = vec![2u32, 0, 3, 1];
    let pa = RowPart::new(
        BlockFormat::Q8_0,
        4,
        k,
        SharedBytes::from_vec(a.part_slices()[0].to_vec()),
        Some(order.clone()),
    )
    .unwrap();
    let pb = RowPart::new(
        BlockFormat::F16,
        3,
        k,
        SharedBytes::from_vec(b.part_slices()[0].to_vec()),
        None,
    )
    .unwrap();
    let stacked = WeightMatrix::from_parts(k, vec![pa, pb]).unwrap();
    assert_eq!(stacked.rows(), 7);
    let (fa, fb) = (a.to_f32(), b.to_f32());
    let full = stacked.to_f32();
    for (i, &o) in order.iter().enumerate() {
        assert_eq!(
            &full[i * k..(i + 1) * k],
            &fa[o as usize * k..(o as usize + 1) * k]
        );
    }
    assert_eq!(&full[4 * k..], &fb[..]);
    let x = activations(2, k, 3);
    let mut got = vec![0f32; 2 * 7];
    matmul(&x, 2, &stacked, &mut got);
    let dense = WeightMatrix::from_f32(7, k, full, WeightDtype::F32).unwrap();
    let mut want = vec![0f32; 2 * 7];
    matmul(&x, 2, &dense, &mut want);
    assert_eq!(got, want);
}

#[test]
fn bad_shapes_are_errors() {
    let bytes = SharedBytes::from_vec(vec![0u8; 34]);
    assert!(RowPart::new(BlockFormat::Q8_0, 1, 31, bytes.clone(), None).is_err());
    assert!(RowPart::new(BlockFormat::Q8_0, 2, 32, bytes.clone(), None).is_err());
    assert!(RowPart::new(BlockFormat::Q8_0, 1, 32, bytes.clone(), Some(vec![1])).is_err());
    assert!(RowPart::new(BlockFormat::Q8_0, 1, 32, bytes, Some(vec![0])).is_ok());
    assert!(WeightMatrix::from_f32(2, 3, vec![0.0; 5], WeightDtype::F32).is_err());
}

#[test]
fn half_dtypes_round_trip_through_from_f32() {
    let (n, k) = (3, 40);
    let v: Vec<f32> = (0..n * k).map(|i| (i as f32 - 60.0) / 64.0).collect();
    // Multiples of 1/64 below 2 are exact in f16 and bf16.
    for dtype in [
        WeightDtype::F32,
        WeightDtype::F16,
        WeightDtype::Bf16,
        WeightDtype::AsStored,
    ] {
        assert_eq!(
            WeightMatrix::from_f32(n, k, v.clone(), dtype)
                .unwrap()
                .to_f32(),
            v,
            "{dtype:?}"
        );
    }
}
