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

/// How the scores of [`paged_attention_with`] are formed and which keys a query sees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionParams {
    /// Multiplies q·k (usually `1/sqrt(head_dim)`).
    pub scale: f32,
    /// Gemma 2's attention logit soft-cap: `score = cap * tanh(score / cap)` after scaling.
    pub softcap: Option<f32>,
    /// Sliding window: a query at position `p` sees the keys at `p - window + 1 ..= p` (the
    /// window counts the query's own token, as transformers' and vLLM's masks do).
    pub window: Option<usize>,
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
    let params = AttentionParams {
        scale,
        softcap: None,
        window: None,
    };
    paged_attention_with(q, seqs, k_store, v_store, layout, n_heads, params, out)
}

/// [`paged_attention`] with soft-capped scores and/or a sliding window.
#[allow(clippy::too_many_arguments)]
pub fn paged_attention_with(
    q: &[f32],
    seqs: &[AttentionSeq<'_>],
    k_store: &[f32],
    v_store: &[f32],
    layout: PagedKvLayout,
    n_heads: usize,
    params: AttentionParams,
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
                    params,
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
    params: AttentionParams,
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
    let first = params.window.map_or(0, |w| ctx.saturating_sub(w.max(1)));
    scores.clear();
    scores.reserve(ctx - first);
    let mut max = f32::NEG_INFINITY;
    for t in first..ctx {
        let block = seq.block_table[t / layout.block_size] as usize;
        let off = layout.offset(block, kv_head, t % layout.block_size);
        let mut sc = dot(qv, &k_store[off..off + hd]) * params.scale;
        if let Some(cap) = params.softcap {
            sc = (sc / cap).tanh() * cap;
        }
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
    for (t, &p) in (first..ctx).zip(scores.iter()) {
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
        dense_with(q, k, v, (t, n_heads, kv_heads, hd), None, None)
    }

    /// Dense attention where query `i` sees keys `j` with `i - window < j <= i`, and scores
    /// are soft-capped as `cap * tanh(s / cap)`.
    fn dense_with(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        (t, n_heads, kv_heads, hd): (usize, usize, usize, usize),
        window: Option<usize>,
        cap: Option<f64>,
    ) -> Vec<f32> {
        let mut out = vec![0.0; t * n_heads * hd];
        for i in 0..t {
            for h in 0..n_heads {
                let g = h / (n_heads / kv_heads);
                let qv = &q[(i * n_heads + h) * hd..][..hd];
                let lo = window.map_or(0, |w| (i + 1).saturating_sub(w));
                let s: Vec<f64> = (0..=i)
                    .map(|j| {
                        let raw = qv
                            .iter()
                            .zip(&k[(j * kv_heads + g) * hd..][..hd])
                            .map(|(a, b)| (*a * *b) as f64)
                            .sum::<f64>()
                            * 0.5;
                        let capped = cap.map_or(raw, |c| (raw / c).tanh() * c);
                        if j < lo {
                            f64::NEG_INFINITY
                        } else {
                            capped
                        }
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

    #[test]
    fn sliding_window_and_softcap_match_dense_masking() {
        let (n_heads, kv_heads, hd, bs, t) = (2, 1, 4, 4, 9);
        let layout = PagedKvLayout {
            block_size: bs,
            kv_heads,
            head_dim: hd,
        };
        let val = |i: usize, m: usize| ((i * m % 19) as f32 - 9.0) / 3.0;
        let q: Vec<f32> = (0..t * n_heads * hd).map(|i| val(i, 7)).collect();
        let k: Vec<f32> = (0..t * kv_heads * hd).map(|i| val(i, 5)).collect();
        let v: Vec<f32> = (0..t * kv_heads * hd).map(|i| val(i, 3)).collect();
        let table = [2u32, 0, 1];
        let mut ks = vec![0.0; 3 * layout.block_len()];
        let mut vs = vec![0.0; 3 * layout.block_len()];
        let slots: Vec<usize> = (0..t)
            .map(|p| table[p / bs] as usize * bs + p % bs)
            .collect();
        write_kv(&mut ks, &mut vs, layout, &slots, &k, &v);
        let seqs = [AttentionSeq {
            q_start: 0,
            n_q: t,
            ctx_start: 0,
            block_table: &table,
        }];
        let shape = (t, n_heads, kv_heads, hd);
        for (window, cap) in [(Some(3), None), (None, Some(2.0)), (Some(5), Some(1.5))] {
            let want = dense_with(&q, &k, &v, shape, window, cap);
            let mut got = vec![0.0; t * n_heads * hd];
            let params = AttentionParams {
                scale: 0.5,
                softcap: cap.map(|c| c as f32),
                window,
            };
            paged_attention_with(&q, &seqs, &ks, &vs, layout, n_heads, params, &mut got);
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() < 1e-4, "{window:?} {cap:?}: {a} vs {b}");
            }
            // The masking matters: full attention gives different rows once i >= window.
            let full = dense(&q, &k, &v, t, n_heads, kv_heads, hd);
            assert!(got.iter().zip(&full).any(|(a, b)| (a - b).abs() > 1e-3));
        }
    }
}
