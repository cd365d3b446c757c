//! `y = x · Wᵀ` for f32 activations `x` (m × k) and a weight matrix `W` (n × k) in any stored
//! format.
//!
//! Rows of W are split evenly over the worker pool, so each weight byte is read from memory
//! once per call whatever m is (decode is bound by weight bandwidth). Each thread decodes a tile
//! of its rows into an L1-resident f32 buffer and reuses it for every activation row, in groups
//! that share each weight load ([`super::dot`]); every output element is reduced in the
//! canonical order of the instruction set, so results do not depend on m or on the grouping.

use std::cell::RefCell;

use super::dot::{dot_rows, group};
use super::isa::{self, Isa};
use super::pool::{pool, WorkerPool};
use super::quant::{self, BlockFormat};
use super::weights::WeightMatrix;

/// Weight rows decoded together: reused across all activation groups while in L1.
const ROW_TILE: usize = 4;

/// Output pointer shared by threads that write disjoint columns.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: every thread writes only its own columns (weight rows) of each output row, so no two
// threads touch the same element, and `out` outlives the pool job.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

thread_local! {
    /// Decoded weight tiles; grows to the largest tile seen, then is reused (no per-op allocation).
    static TILE: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `out[m × n] = x[m × k] · Wᵀ` with `W` of shape `n × k`, on the process-wide pool and the
/// active instruction set.
///
/// Panics if the slice lengths do not match the shapes: those come from the model definition,
/// never from user input.
pub fn matmul(x: &[f32], m: usize, w: &WeightMatrix, out: &mut [f32]) {
    matmul_with(isa::active(), pool(), x, m, w, out)
}

/// [`matmul`] with an explicit instruction set and pool (tests and benchmarks).
pub fn matmul_with(
    isa: Isa,
    pool: &WorkerPool,
    x: &[f32],
    m: usize,
    w: &WeightMatrix,
    out: &mut [f32],
) {
    let (n, k) = (w.rows(), w.cols());
    assert_eq!(
        x.len(),
        m * k,
        "matmul: x has {} elements, expected {m}x{k}",
        x.len()
    );
    assert_eq!(
        out.len(),
        m * n,
        "matmul: out has {} elements, expected {m}x{n}",
        out.len()
    );
    if m == 0 || n == 0 {
        return;
    }
    let slices = w.part_slices();
    let out_ptr = OutPtr(out.as_mut_ptr());
    let g = group(isa);
    if m == 1 {
        // Decode: one activation row, bound by weight bandwidth; decode each row in registers.
        pool.for_ranges(n, ROW_TILE, &|rows| {
            let out = out_ptr;
            for j in rows {
                let (format, bytes) = w.row_bytes_of(&slices, j);
                let v = match quant::fused_dot(isa, format, bytes, x) {
                    Some(v) => v,
                    None => TILE.with(|tile| {
                        let mut tile = tile.borrow_mut();
                        if tile.len() < k {
                            tile.resize(k, 0.0);
                        }
                        let wrow = match in_place_f32(format, bytes) {
                            Some(f) => f,
                            None => {
                                quant::decode(isa, format, bytes, &mut tile[..k]);
                                &tile[..k]
                            }
                        };
                        let mut v = [0f32];
                        dot_rows(isa, wrow, &[x], &mut v);
                        v[0]
                    }),
                };
                // SAFETY: see `OutPtr`; column j belongs to this thread.
                unsafe { *out.0.add(j) = v };
            }
        });
        return;
    }
    pool.for_ranges(n, ROW_TILE, &|rows| {
        let out = out_ptr;
        TILE.with(|tile| {
            let mut tile = tile.borrow_mut();
            if tile.len() < ROW_TILE * k {
                tile.resize(ROW_TILE * k, 0.0);
            }
            let mut j0 = rows.start;
            while j0 < rows.end {
                let j1 = (j0 + ROW_TILE).min(rows.end);
                let mut wrows: [&[f32]; ROW_TILE] = [&[]; ROW_TILE];
                // Decode the tile (f32 rows aligned in memory are read in place).
                let (decoded, _) = tile.split_at_mut(ROW_TILE * k);
                let mut chunks = decoded.chunks_mut(k.max(1));
                for (r, j) in (j0..j1).enumerate() {
                    let (format, bytes) = w.row_bytes_of(&slices, j);
                    let Some(buf) = chunks.next() else { break };
                    wrows[r] = match in_place_f32(format, bytes) {
                        Some(f) => f,
                        None => {
                            quant::decode(isa, format, bytes, buf);
                            &*buf
                        }
                    };
                }
                let mut vals = [0f32; 4];
                let mut t0 = 0;
                while t0 < m {
                    let t1 = (t0 + g).min(m);
                    let mut xs: [&[f32]; 4] = [&[]; 4];
                    for (i, t) in (t0..t1).enumerate() {
                        xs[i] = &x[t * k..(t + 1) * k];
                    }
                    for (r, j) in (j0..j1).enumerate() {
                        dot_rows(isa, wrows[r], &xs[..t1 - t0], &mut vals[..t1 - t0]);
                        for (i, t) in (t0..t1).enumerate() {
                            // SAFETY: see `OutPtr`; (t, j) is inside out and j is this thread's.
                            unsafe { *out.0.add(t * n + j) = vals[i] };
                        }
                    }
                    t0 = t1;
                }
                j0 = j1;
            }
        });
    });
}

/// An f32 row that can be used without decoding (stored aligned, as owned f32 buffers are).
#[inline]
fn in_place_f32(format: BlockFormat, bytes: &[u8]) -> Option<&[f32]> {
    if format != BlockFormat::F32 {
        return None;
    }
    // SAFETY: any bit pattern is a valid f32; align_to only yields the aligned middle.
    let (pre, mid, post) = unsafe { bytes.align_to::<f32>() };
    (pre.is_empty() && post.is_empty()).then_some(mid)
}

#[cfg(test)]
mod tests;
