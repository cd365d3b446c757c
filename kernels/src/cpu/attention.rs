//! Causal grouped-query attention that reads K/V through block tables, and the write of new
//! K/V rows into that block-structured store.
//!
//! The store of one layer is `[num_blocks][kv_heads][block_size][head_dim]`: the keys of one
//! head inside one block are contiguous, so a query streams them without strided loads.

use std::cell::RefCell;

use super::pool::pool;
use super::simd::{axpy, dot};

/// Geometry of one layer's K (or V) store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PagedKvLayout {
    pub block_size: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl PagedKvLayout {
    /// f32 elements per block.
    pub fn block_len(&self) -> usize {
        self.kv_heads * self.block_size * self.head_dim
    }

    /// Offset of (block, head, slot) in a layer's store.
    #[inline]
    fn offset(&self, block: usize, head: usize, slot: usize) -> usize {
        ((block * self.kv_heads + head) * self.block_size + slot) * self.head_dim
    }
}

/// Writes the K and V rows of new tokens (`tokens × kv_heads × head_dim`) into their slots;
/// `slots[t]` is `block * block_size + offset`.
pub fn write_kv(
    k_store: &mut [f32],
    v_store: &mut [f32],
    layout: PagedKvLayout,
    slots: &[usize],
    k: &[f32],
    v: &[f32],
) {
    let (hd, bs) = (layout.head_dim, layout.block_size);
    let row = layout.kv_heads * hd;
    for (t, &slot) in slots.iter().enumerate() {
        let (block, off) = (slot / bs, slot % bs);
        for h in 0..layout.kv_heads {
            let dst = layout.offset(block, h, off);
            let src = t * row + h * hd;
            k_store[dst..dst + hd].copy_from_slice(&k[src..src + hd]);
            v_store[dst..dst + hd].copy_from_slice(&v[src..src + hd]);
        }
    }
}

/// The query tokens of one sequence in a batch.
#[derive(Debug, Clone)]
pub struct AttentionSeq<'a> {
    /// Index of this sequence's first query row in the batch's `q`.
    pub q_start: usize,
    /// Number of query rows (new tokens) of this sequence.
    pub n_q: usize,
    /// Position of the first query token: tokens before it are already in the store.
    pub ctx_start: usize,
    /// Physical block of each logical block of the sequence.
    pub block_table: &'a [u32],
}

/// `out = softmax(q·kᵀ·scale + causal mask)·v` per query token and head, over every earlier
/// position of the same sequence (the new tokens' K/V must already be written).
///
/// `q` and `out` are `tokens × n_heads × head_dim`; query head `h` reads KV head
/// `h / (n_heads / kv_heads)` (grouped-query attention).
#[allow(clippy::too_many_arguments)]
pub fn paged_attention(
    q: &[f32],
    seqs: &[AttentionSeq<'_>],
    k_store: &[f32],
    v_store: &[f32],
    layout: PagedKvLayout,
    n_heads: usize,
    scale: f32,
    out: &mut [f32],
) {
    let hd = layout.head_dim;
    let group = n_heads / layout.kv_heads.max(1);
    // Map every query row to (sequence, absolute position).
    let mut rows = Vec::with_capacity(out.len() / (n_heads * hd).max(1));
    for (s, seq) in seqs.iter().enumerate() {
        for i in 0..seq.n_q {
            rows.push((seq.q_start + i, s, seq.ctx_start + i));
        }
    }
    rows.sort_unstable();
    // One unit of work per (query row, head): enough parallelism for a single decoding
    // sequence. Each unit only reads its own sequence's blocks and writes its own output, so
    // the result does not depend on the split (or on which other sequences share the batch).
    let out_ptr = OutRows(out.as_mut_ptr());
    let units = out.len() / hd.max(1);
    pool().for_ranges(units, 1, &|range| {
        let out = out_ptr;
        SCORES.with(|scores| {
            let mut scores = scores.borrow_mut();
            for idx in range {
                // SAFETY: units are disjoint `hd`-element rows of `out`, each owned by one share.
                let o = unsafe { std::slice::from_raw_parts_mut(out.0.add(idx * hd), hd) };
                attend_one(
                    q,
                    &rows,
                    seqs,
                    k_store,
                    v_store,
                    layout,
                    n_heads,
                    group,
                    scale,
                    idx,
                    &mut scores,
                    o,
                );
            }
        });
    });
}

thread_local! {
    /// Attention scores of one query; grows to the longest context seen, then is reused.
    static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

#[derive(Clone, Copy)]
struct OutRows(*mut f32);
// SAFETY: see `paged_attention`: every share writes disjoint rows.
unsafe impl Send for OutRows {}
unsafe impl Sync for OutRows {}

/// Attention of query row/head `idx` (= row * n_heads + head) into `o`.
#[allow(clippy::too_many_arguments)]
fn attend_one(
    q: &[f32],
    rows: &[(usize, usize, usize)],
    seqs: &[AttentionSeq<'_>],
    k_store: &[f32],
    v_store: &[f32],
    layout: PagedKvLayout,
    n_heads: usize,
    group: usize,
    scale: f32,
    idx: usize,
    scores: &mut Vec<f32>,
    o: &mut [f32],
) {
    let hd = layout.head_dim;
    let (row, head) = (idx / n_heads, idx % n_heads);
    let Ok(r) = rows.binary_search_by_key(&row, |x| x.0) else {
        return;
    };
    let (_, s, pos) = rows[r];
    let seq = &seqs[s];
    let kv_head = head / group.max(1);
    let qv = &q[idx * hd..(idx + 1) * hd];
    let ctx = pos + 1;
    scores.clear();
    scores.reserve(ctx);
    let mut max = f32::NEG_INFINITY;
    for t in 0..ctx {
        let block = seq.block_table[t / layout.block_size] as usize;
        let off = layout.offset(block, kv_head, t % layout.block_size);
        let sc = dot(qv, &k_store[off..off + hd]) * scale;
        max = max.max(sc);
        scores.push(sc);
    }
    let mut sum = 0.0f32;
    for sc in scores.iter_mut() {
        *sc = (*sc - max).exp();
        sum += *sc;
    }
    o.fill(0.0);
    let inv = 1.0 / sum;
    for (t, &p) in scores.iter().enumerate() {
        let block = seq.block_table[t / layout.block_size] as usize;
        let off = layout.offset(block, kv_head, t % layout.block_size);
        axpy(p * inv, &v_store[off..off + hd], o);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dense causal attention over contiguous K/V, the textbook definition.
    fn dense(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        t: usize,
        n_heads: usize,
        kv_heads: usize,
        hd: usize,
    ) -> Vec<f32> {
        let mut out = vec![0.0; t * n_heads * hd];
        for i in 0..t {
            for h in 0..n_heads {
                let g = h / (n_heads / kv_heads);
                let qv = &q[(i * n_heads + h) * hd..][..hd];
                let s: Vec<f64> = (0..=i)
                    .map(|j| {
                        qv.iter()
                            .zip(&k[(j * kv_heads + g) * hd..][..hd])
                            .map(|(a, b)| (*a * *b) as f64)
                            .sum::<f64>()
                            * 0.5
                    })
                    .collect();
                let m = s.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for d in 0..hd {
                    out[(i * n_heads + h) * hd + d] = (0..=i)
                        .map(|j| e[j] / z * v[(j * kv_heads + g) * hd + d] as f64)
                        .sum::<f64>() as f32;
                }
            }
        }
        out
    }

    #[test]
    fn paged_matches_dense_with_scattered_blocks_and_chunked_queries() {
        let (n_heads, kv_heads, hd, bs, t) = (4, 2, 8, 4, 11);
        let layout = PagedKvLayout {
            block_size: bs,
            kv_heads,
            head_dim: hd,
        };
        let val = |i: usize, m: usize| ((i * m % 23) as f32 - 11.0) / 10.0;
        let q: Vec<f32> = (0..t * n_heads * hd).map(|i| val(i, 7)).collect();
        let k: Vec<f32> = (0..t * kv_heads * hd).map(|i| val(i, 5)).collect();
        let v: Vec<f32> = (0..t * kv_heads * hd).map(|i| val(i, 3)).collect();
        let want = dense(&q, &k, &v, t, n_heads, kv_heads, hd);

        // Blocks deliberately out of order; the prompt is processed in two chunks (6 + 5).
        let table = [5u32, 1, 3];
        let mut ks = vec![0.0; 6 * layout.block_len()];
        let mut vs = vec![0.0; 6 * layout.block_len()];
        let slots: Vec<usize> = (0..t)
            .map(|p| table[p / bs] as usize * bs + p % bs)
            .collect();
        let mut got = vec![0.0; t * n_heads * hd];
        for (start, end) in [(0, 6), (6, t)] {
            let row = kv_heads * hd;
            write_kv(
                &mut ks,
                &mut vs,
                layout,
                &slots[start..end],
                &k[start * row..end * row],
                &v[start * row..end * row],
            );
            let seqs = [AttentionSeq {
                q_start: 0,
                n_q: end - start,
                ctx_start: start,
                block_table: &table,
            }];
            let qrow = n_heads * hd;
            paged_attention(
                &q[start * qrow..end * qrow],
                &seqs,
                &ks,
                &vs,
                layout,
                n_heads,
                0.5,
                &mut got[start * qrow..end * qrow],
            );
        }
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
}
