//! The filters of random sampling (min-p, top-k, top-p) and the draw itself. Top-k and top-p
//! reduce the row to a candidate list without ever sorting the whole vocabulary: top-k by a
//! chunk-maximum prefilter and a bounded best-list (or selection for large k), top-p by a
//! probability-mass histogram and a weighted quickselect.

use rand::Rng;

use super::logprobs::{best_first, top_n_of_row};
use super::math::{clean, exp_neg, exp_weights, max_clean, sum_f64, Scratch, BLOCK};

/// Masks tokens whose probability is below `min_p` times the top token's. In logit space that
/// is `v < max + ln(min_p)`, which needs no softmax.
pub(crate) fn apply_min_p(row: &mut [f32], min_p: f32) {
    let max = max_clean(row);
    if max == f32::NEG_INFINITY {
        return;
    }
    let threshold = max + min_p.ln();
    for v in row.iter_mut() {
        *v = if *v < threshold {
            f32::NEG_INFINITY
        } else {
            *v
        };
    }
}

/// Fills `cands` with the surviving candidates of top-k and/or top-p, in no particular (but
/// deterministic) order.
pub(crate) fn top_k_top_p(
    row: &[f32],
    top_k: Option<usize>,
    top_p: Option<f32>,
    cands: &mut Vec<(f32, u32)>,
    scratch: &mut Scratch,
) {
    cands.clear();
    let top_p = top_p.filter(|&p| p < 1.0);
    // A k as large as the row keeps everything.
    let top_k = top_k.filter(|&k| k < row.len());
    match (top_k, top_p) {
        (Some(k), _) => {
            cands.extend(top_n_of_row(row, k, scratch));
            // Tokens tied with the k-th are kept too, as vLLM's `logits < kth` mask does; they
            // have higher ids than the k-th (ties are ordered by id) and, being at least the
            // k-th value, are in the prefilter's superset.
            if let Some(&(kth, kth_id)) = cands.last().filter(|_| cands.len() == k) {
                let ties = scratch
                    .pairs
                    .iter()
                    .filter(|&&(v, id)| v == kth && id > kth_id);
                cands.extend(ties);
            }
            if let Some(p) = top_p {
                // Top-p renormalizes over the top-k survivors.
                let max = cands.iter().map(|c| c.0).fold(f32::NEG_INFINITY, f32::max);
                let weight = |c: &(f32, u32)| exp_neg(c.0 - max) as f64;
                let total: f64 = cands.iter().map(weight).sum();
                let keep = nucleus(cands, p as f64 * total, 0.0, weight);
                cands.truncate(keep);
            }
        }
        (None, Some(p)) => nucleus_of_row(row, p, cands, scratch),
        (None, None) => cands.extend(row.iter().enumerate().filter_map(|(i, &v)| {
            let v = clean(v);
            (v > f32::NEG_INFINITY).then_some((v, i as u32))
        })),
    }
}

/// Histogram buckets of [`nucleus_of_row`], spread over the logit range of the tokens that
/// carry any weight, so even a nearly flat distribution splits into small buckets.
const BUCKETS: usize = 1024;

/// Top-p over a whole row. The nucleus of a peaked distribution lies within the best few
/// dozen tokens, found without a scan per token; otherwise a histogram of probability mass by
/// distance from the best logit finds the bucket where the cut falls, tokens in better buckets
/// are kept outright, and only that bucket's tokens are ordered exactly.
fn nucleus_of_row(row: &[f32], p: f32, cands: &mut Vec<(f32, u32)>, scratch: &mut Scratch) {
    let max = max_clean(row);
    if max == f32::NEG_INFINITY {
        return;
    }
    exp_weights(row, max, &mut scratch.weights);
    let total: f64 = scratch.weights.chunks(BLOCK).map(sum_f64).sum();
    let target = p as f64 * total;
    for m in [64, 256] {
        let best = top_n_of_row(row, m, scratch);
        let weights = &scratch.weights;
        let mut above = 0.0f64;
        for (i, c) in best.iter().enumerate() {
            if above >= target {
                cands.extend_from_slice(&best[..i]);
                return;
            }
            above += weights[c.1 as usize] as f64;
        }
        if best.len() < m {
            // Every unmasked token is in `best`.
            cands.extend_from_slice(&best);
            return;
        }
    }
    let weights = &scratch.weights;
    // Tokens more than ~87 below the best have no weight (`exp_neg`), so the range is capped.
    let min = row
        .iter()
        .map(|&v| clean(v))
        .filter(|&v| v > f32::NEG_INFINITY)
        .fold(max, f32::min)
        .max(max - 88.0);
    let scale = BUCKETS as f32 / (max - min).max(f32::MIN_POSITIVE);
    let bucket = |v: f32| (((max - v) * scale) as usize).min(BUCKETS - 1);
    let mut mass = vec![0.0f64; BUCKETS];
    for (&v, &w) in row.iter().zip(weights.iter()) {
        if w > 0.0 {
            mass[bucket(clean(v))] += w as f64;
        }
    }
    // The cut bucket: the first whose cumulative mass reaches the target. Every token of an
    // earlier bucket has less than `target` ranked above it; every later token has more.
    let mut above = 0.0f64;
    let mut cut = BUCKETS - 1;
    for (b, &m) in mass.iter().enumerate() {
        if above + m >= target {
            cut = b;
            break;
        }
        above += m;
    }
    let boundary = &mut scratch.pairs;
    boundary.clear();
    for (i, (&v, &w)) in row.iter().zip(weights.iter()).enumerate() {
        if w > 0.0 {
            let v = clean(v);
            match bucket(v).cmp(&cut) {
                std::cmp::Ordering::Less => cands.push((v, i as u32)),
                std::cmp::Ordering::Equal => boundary.push((v, i as u32)),
                std::cmp::Ordering::Greater => {}
            }
        }
    }
    let keep = nucleus(boundary, target, above, |c| weights[c.1 as usize] as f64);
    cands.extend_from_slice(&boundary[..keep]);
}

/// Reorders `cands` so that its first `n` entries are the nucleus, and returns `n`: a token is
/// kept while the mass ranked above it (best-first order, plus `above` from tokens outside
/// `cands`) is below `target` (vLLM's top-p rule). A quickselect on the cumulative mass finds
/// the cut in expected linear time.
fn nucleus(
    cands: &mut [(f32, u32)],
    target: f64,
    mut above: f64,
    weight: impl Fn(&(f32, u32)) -> f64,
) -> usize {
    // Invariant: everything before `lo` is kept, with mass `above`; the cut lies in lo..=hi.
    let (mut lo, mut hi) = (0usize, cands.len());
    let mut rounds = 0u32;
    while hi - lo > 32 && rounds < 64 {
        rounds += 1;
        let pivot = median_of_three(cands, lo, hi);
        cands.swap(pivot, hi - 1);
        let pv = cands[hi - 1];
        let mut store = lo;
        let mut better_mass = 0.0;
        for j in lo..hi - 1 {
            if best_first(&cands[j], &pv).is_lt() {
                better_mass += weight(&cands[j]);
                cands.swap(store, j);
                store += 1;
            }
        }
        cands.swap(store, hi - 1);
        if above + better_mass >= target {
            // The pivot already has at least the target mass above it: the cut is at or
            // before it.
            hi = store;
        } else {
            above += better_mass + weight(&cands[store]);
            lo = store + 1;
        }
    }
    let rest = &mut cands[lo..hi];
    rest.sort_unstable_by(best_first);
    for (i, c) in rest.iter().enumerate() {
        if above >= target {
            return lo + i;
        }
        above += weight(c);
    }
    hi
}

fn median_of_three(c: &[(f32, u32)], lo: usize, hi: usize) -> usize {
    let (a, b, d) = (lo, lo + (hi - lo) / 2, hi - 1);
    let lt = |x: usize, y: usize| best_first(&c[x], &c[y]).is_lt();
    if lt(a, b) == lt(b, d) {
        b
    } else if lt(a, b) == lt(a, d) {
        d
    } else {
        a
    }
}

/// Draws one candidate with probability proportional to `e^v` using one uniform number.
/// Returns `None` when no candidate has positive weight.
pub(crate) fn draw_sparse(cands: &[(f32, u32)], rng: &mut impl Rng) -> Option<u32> {
    let max = cands.iter().map(|c| c.0).reduce(f32::max)?;
    let weight = |v: f32| exp_neg(v - max) as f64;
    let total: f64 = cands.iter().map(|c| weight(c.0)).sum();
    if total <= 0.0 {
        return None;
    }
    let target = rng.random::<f64>() * total;
    let mut acc = 0.0;
    for &(v, id) in cands {
        acc += weight(v);
        if acc > target {
            return Some(id);
        }
    }
    // Rounding can leave `acc` a hair below `target`: the last token with weight is the answer.
    cands.iter().rev().find(|c| weight(c.0) > 0.0).map(|c| c.1)
}

/// [`draw_sparse`] over a whole row (masked entries are `-inf`), in id order. The row's
/// weights go to the reusable `weights` buffer; per-block sums locate the draw without a
/// sequential scan of the whole row.
pub(crate) fn draw_dense(row: &[f32], rng: &mut impl Rng, weights: &mut Vec<f32>) -> Option<u32> {
    let max = max_clean(row);
    if max == f32::NEG_INFINITY {
        return None;
    }
    exp_weights(row, max, weights);
    let blocks: Vec<f64> = weights.chunks(BLOCK).map(sum_f64).collect();
    let total: f64 = blocks.iter().sum();
    let target = rng.random::<f64>() * total;
    let mut acc = 0.0f64;
    for (b, &block_sum) in blocks.iter().enumerate() {
        if acc + block_sum <= target {
            acc += block_sum;
            continue;
        }
        for (i, &w) in weights[b * BLOCK..].iter().take(BLOCK).enumerate() {
            acc += w as f64;
            if acc > target {
                return Some((b * BLOCK + i) as u32);
            }
        }
    }
    weights.iter().rposition(|&w| w > 0.0).map(|i| i as u32)
}
