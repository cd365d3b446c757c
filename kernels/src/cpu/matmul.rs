//! `y = x · Wᵀ` for activations `x` (m × k, f32) and a weight matrix `W` (n × k) stored in
//! f32, f16 or bf16.
//!
//! The work is split over tiles of W's rows, so each weight byte is read from memory once per
//! call whatever m is: decode (m = number of running sequences) is bound by weight bandwidth,
//! and this is what keeps both cores streaming. Small m uses SIMD dot products; large m
//! (prefill) hands each tile to `gemm`'s packed micro-kernels.

use std::sync::Arc;

use half::{bf16, f16};
use rayon::prelude::*;

use super::simd::{dot, dot_bf16, dot_f16};

/// Element storage of a weight matrix. Kept as an enum (not a generic) so that one model type
/// can mix dtypes and a later issue can add quantized block formats here.
#[derive(Debug)]
pub enum WeightStorage {
    F32(Vec<f32>),
    F16(Vec<f16>),
    Bf16(Vec<bf16>),
}

impl WeightStorage {
    pub fn len(&self) -> usize {
        match self {
            WeightStorage::F32(v) => v.len(),
            WeightStorage::F16(v) => v.len(),
            WeightStorage::Bf16(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held, for memory reports.
    pub fn size_bytes(&self) -> usize {
        match self {
            WeightStorage::F32(v) => v.len() * 4,
            WeightStorage::F16(v) => v.len() * 2,
            WeightStorage::Bf16(v) => v.len() * 2,
        }
    }
}

/// A row-major `rows × cols` matrix; cheap to clone (tied embeddings share one).
#[derive(Debug, Clone)]
pub struct WeightMatrix {
    rows: usize,
    cols: usize,
    data: Arc<WeightStorage>,
}

/// Shape error when a matrix is built from a buffer of the wrong length.
#[derive(Debug, thiserror::Error)]
#[error("weight matrix {rows}x{cols} needs {} elements, got {got}", rows * cols)]
pub struct ShapeError {
    pub rows: usize,
    pub cols: usize,
    pub got: usize,
}

impl WeightMatrix {
    pub fn new(rows: usize, cols: usize, data: WeightStorage) -> Result<Self, ShapeError> {
        if data.len() != rows * cols {
            return Err(ShapeError { rows, cols, got: data.len() });
        }
        Ok(WeightMatrix { rows, cols, data: Arc::new(data) })
    }

    /// An f32 matrix converted to the storage dtype named by `dtype`.
    pub fn from_f32(rows: usize, cols: usize, values: Vec<f32>, dtype: WeightDtype) -> Result<Self, ShapeError> {
        let storage = match dtype {
            WeightDtype::F32 => WeightStorage::F32(values),
            WeightDtype::F16 => WeightStorage::F16(values.par_iter().map(|v| f16::from_f32(*v)).collect()),
            WeightDtype::Bf16 => WeightStorage::Bf16(values.par_iter().map(|v| bf16::from_f32(*v)).collect()),
        };
        Self::new(rows, cols, storage)
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn storage(&self) -> &WeightStorage {
        &self.data
    }

    /// Copies row `r` into `out` as f32 (embedding lookup). `r` must be < rows.
    pub fn row_into(&self, r: usize, out: &mut [f32]) {
        let range = r * self.cols..(r + 1) * self.cols;
        match &*self.data {
            WeightStorage::F32(v) => out.copy_from_slice(&v[range]),
            WeightStorage::F16(v) => out.iter_mut().zip(&v[range]).for_each(|(o, x)| *o = x.to_f32()),
            WeightStorage::Bf16(v) => out.iter_mut().zip(&v[range]).for_each(|(o, x)| *o = x.to_f32()),
        }
    }

    /// Rows `r0..r1` as f32: borrowed when stored as f32, converted into `scratch` otherwise.
    fn rows_f32<'a>(&'a self, r0: usize, r1: usize, scratch: &'a mut Vec<f32>) -> &'a [f32] {
        let range = r0 * self.cols..r1 * self.cols;
        match &*self.data {
            WeightStorage::F32(v) => &v[range],
            WeightStorage::F16(v) => {
                scratch.clear();
                scratch.extend(v[range].iter().map(|x| x.to_f32()));
                scratch
            }
            WeightStorage::Bf16(v) => {
                scratch.clear();
                scratch.extend(v[range].iter().map(|x| x.to_f32()));
                scratch
            }
        }
    }
}

/// The storage dtype of weights (`--dtype`); activations are always f32 on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightDtype {
    F32,
    F16,
    Bf16,
}

/// Output pointer shared by tiles that write disjoint columns.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: every tile writes only its own columns [j0, j1) of each output row, so no two
// threads ever touch the same element, and the borrow of `out` outlives the parallel loop.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// Below this many activation rows the SIMD dot path beats packing for gemm.
const SMALL_M: usize = 4;

/// `out[m × n] = x[m × k] · Wᵀ` with `W` of shape `n × k`.
///
/// Panics if the slice lengths do not match the shapes: those come from the model definition,
/// never from user input.
pub fn matmul(x: &[f32], m: usize, w: &WeightMatrix, out: &mut [f32]) {
    let (n, k) = (w.rows, w.cols);
    assert_eq!(x.len(), m * k, "matmul: x has {} elements, expected {m}x{k}", x.len());
    assert_eq!(out.len(), m * n, "matmul: out has {} elements, expected {m}x{n}", out.len());
    if m == 0 || n == 0 {
        return;
    }
    // Tiles small enough to spread over the threads, large enough to amortise the dispatch.
    let threads = rayon::current_num_threads().max(1);
    let tile = if m <= SMALL_M { 16 } else { 64 }.min(n.div_ceil(threads)).max(1);
    let out_ptr = OutPtr(out.as_mut_ptr());
    let n_tiles = n.div_ceil(tile);
    (0..n_tiles).into_par_iter().for_each_init(Vec::new, |scratch, t| {
        let j0 = t * tile;
        let j1 = (j0 + tile).min(n);
        let out = out_ptr;
        if m <= SMALL_M {
            // Matrix-vector territory: bound by weight bytes, so dot straight from storage.
            for j in j0..j1 {
                let row = j * k..(j + 1) * k;
                for mi in 0..m {
                    let xr = &x[mi * k..(mi + 1) * k];
                    let v = match w.storage() {
                        WeightStorage::F32(s) => dot(xr, &s[row.clone()]),
                        WeightStorage::F16(s) => dot_f16(xr, &s[row.clone()]),
                        WeightStorage::Bf16(s) => dot_bf16(xr, &s[row.clone()]),
                    };
                    // SAFETY: see `OutPtr`; (mi, j) is inside out and owned by this tile.
                    unsafe { *out.0.add(mi * n + j) = v };
                }
            }
        } else {
            let wt = w.rows_f32(j0, j1, scratch);
            // SAFETY: dst covers rows 0..m and columns j0..j1 of `out` (row stride n), lhs is
            // x (m × k, row stride k), rhs is the tile transposed (element (kk, jj) at
            // jj*k + kk). All pointers are in bounds for those strides.
            unsafe {
                gemm::gemm(
                    m,
                    j1 - j0,
                    k,
                    out.0.add(j0),
                    1,
                    n as isize,
                    false,
                    x.as_ptr(),
                    1,
                    k as isize,
                    wt.as_ptr(),
                    k as isize,
                    1,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &[f32], m: usize, w: &[f32], n: usize, k: usize) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| x[i * k + p] as f64 * w[j * k + p] as f64).sum::<f64>() as f32;
            }
        }
        out
    }

    #[test]
    fn matmul_matches_naive_for_all_dtypes_and_sizes() {
        for &(m, n, k) in &[(1, 7, 5), (3, 33, 64), (4, 100, 17), (5, 65, 40), (17, 130, 96)] {
            let x: Vec<f32> = (0..m * k).map(|i| ((i * 7919 % 97) as f32 - 48.0) / 50.0).collect();
            let w: Vec<f32> = (0..n * k).map(|i| ((i * 104729 % 89) as f32 - 44.0) / 64.0).collect();
            let want = reference(&x, m, &w, n, k);
            // These values are exact in f16 and bf16 (multiples of 1/64 with few bits), so all
            // dtypes must give the same answer.
            for dtype in [WeightDtype::F32, WeightDtype::F16, WeightDtype::Bf16] {
                let wm = WeightMatrix::from_f32(n, k, w.clone(), dtype).unwrap();
                let mut out = vec![0.0; m * n];
                matmul(&x, m, &wm, &mut out);
                for (a, b) in out.iter().zip(&want) {
                    assert!((a - b).abs() < 1e-3 * (1.0 + b.abs()), "{dtype:?} m={m} n={n} k={k}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn wrong_length_is_an_error() {
        assert!(WeightMatrix::new(2, 3, WeightStorage::F32(vec![0.0; 5])).is_err());
    }
}
