//! Row-wide numeric kernels written so the compiler vectorizes them: a 150k-entry row is
//! touched several times per token, and libm's scalar `expf` alone would cost about a
//! millisecond per pass.

/// Entries per block when summing or scanning weights.
pub(crate) const BLOCK: usize = 1024;

/// NaN becomes `-inf` (never chosen) and `+inf` the largest finite value, so that `v - max`
/// is never NaN and a `+inf` logit still wins.
#[inline(always)]
pub(crate) fn clean(v: f32) -> f32 {
    if v.is_nan() {
        f32::NEG_INFINITY
    } else {
        v.min(f32::MAX)
    }
}

/// `e^x` for `x <= 0` with a relative error of a few 1e-7 (Cephes' polynomial), exactly 0 below
/// -87 so masked (`-inf`) entries get no weight at all. Branch-free so loops over it vectorize.
#[inline(always)]
pub(crate) fn exp_neg(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and removing 1.5 * 2^23 rounds to the nearest integer without a libm call.
    const ROUND: f32 = 12_582_912.0;
    let xc = x.clamp(-87.0, 0.0);
    let k = xc * LOG2E + ROUND;
    let n = k - ROUND;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // `k`'s low mantissa bits hold `n` (two's complement): 2^n is built with integer ops only,
    // since a float-to-int `as` cast saturates and keeps the loop from vectorizing.
    let n_int = k.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(n_int.wrapping_add(127) << 23);
    if x < -87.0 {
        0.0
    } else {
        e * scale
    }
}

/// Largest entry after [`clean`]; `-inf` when every entry is masked.
pub(crate) fn max_clean(row: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            let v = clean(v);
            *l = if v > *l { v } else { *l };
        }
    }
    let mut m = chunks
        .remainder()
        .iter()
        .map(|&v| clean(v))
        .fold(f32::NEG_INFINITY, f32::max);
    for l in lanes {
        m = m.max(l);
    }
    m
}

/// Index of the largest entry, the lowest index on ties; 0 when every entry is masked. Two
/// vectorized passes (the maximum, then the block holding its first occurrence) beat one
/// scalar pass that tracks indices.
pub(crate) fn argmax(row: &[f32]) -> u32 {
    let m = max_clean(row);
    if m == f32::NEG_INFINITY {
        return 0;
    }
    const CHUNK: usize = 64;
    for (c, chunk) in row.chunks(CHUNK).enumerate() {
        if chunk.iter().fold(false, |hit, &v| hit | (clean(v) == m)) {
            let i = chunk.iter().position(|&v| clean(v) == m).unwrap_or(0);
            return (c * CHUNK + i) as u32;
        }
    }
    0
}

/// Reusable buffers of one sequence's sampler, so no step allocates per vocabulary entry.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scratch {
    /// Candidate `(value, id)` pairs from [`superset_of_top`].
    pub pairs: Vec<(f32, u32)>,
    /// Selection buffer for large top-n requests.
    pub select: Vec<(f32, u32)>,
    pub maxima: Vec<f32>,
    /// `e^(v - max)` of every entry of the row.
    pub weights: Vec<f32>,
}

/// Entries per chunk of the chunk-maximum prefilter in [`superset_of_top`].
const CHUNK: usize = 64;

/// Fills `out` with every unmasked entry that could be among the `k` best of `row`, usually a
/// small fraction of it. The k best chunk maxima are k distinct entries, so the k-th best chunk
/// maximum bounds the k-th best entry from below: chunks whose maximum is under it are skipped
/// after one vectorized pass.
pub(crate) fn superset_of_top(
    row: &[f32],
    k: usize,
    out: &mut Vec<(f32, u32)>,
    maxima: &mut Vec<f32>,
) {
    out.clear();
    if k == 0 {
        return;
    }
    maxima.clear();
    maxima.extend(row.chunks(CHUNK).map(max_clean));
    let bound = if k > maxima.len() {
        f32::NEG_INFINITY
    } else {
        let mut sorted = maxima.clone();
        sorted.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
        sorted[k - 1]
    };
    for (c, chunk) in row.chunks(CHUNK).enumerate() {
        if maxima[c] < bound || maxima[c] == f32::NEG_INFINITY {
            continue;
        }
        for (j, &v) in chunk.iter().enumerate() {
            let v = clean(v);
            if v >= bound && v > f32::NEG_INFINITY {
                out.push((v, (c * CHUNK + j) as u32));
            }
        }
    }
}

/// Sum of `values` in f64, with independent lanes so it vectorizes.
pub(crate) fn sum_f64(values: &[f32]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let mut chunks = values.chunks_exact(8);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += v as f64;
        }
    }
    lanes.iter().sum::<f64>() + chunks.remainder().iter().map(|&v| v as f64).sum::<f64>()
}

/// `weights[i] = e^(clean(row[i]) - max)`.
pub(crate) fn exp_weights(row: &[f32], max: f32, weights: &mut Vec<f32>) {
    weights.clear();
    weights.resize(row.len(), 0.0);
    for (w, &v) in weights.iter_mut().zip(row) {
        *w = exp_neg(clean(v) - max);
    }
}

/// `ln Σ e^v` over the row; `-inf` when every entry is masked.
pub(crate) fn log_sum_exp(row: &[f32]) -> f64 {
    let max = max_clean(row);
    if max == f32::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    let mut buf = [0.0f32; BLOCK];
    let mut total = 0.0f64;
    for chunk in row.chunks(BLOCK) {
        let buf = &mut buf[..chunk.len()];
        for (w, &v) in buf.iter_mut().zip(chunk) {
            *w = exp_neg(clean(v) - max);
        }
        total += sum_f64(buf);
    }
    max as f64 + total.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_neg_is_accurate_and_zero_for_masked() {
        let mut worst = 0.0f64;
        for i in 0..=870_000 {
            let x = -(i as f32) * 1e-4;
            let want = (x as f64).exp();
            let got = exp_neg(x) as f64;
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 5e-7, "relative error {worst}");
        assert_eq!(exp_neg(0.0), 1.0);
        assert_eq!(exp_neg(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_neg(-1000.0), 0.0);
    }

    #[test]
    fn row_kernels() {
        let row = [
            1.0,
            f32::NAN,
            3.0,
            f32::NEG_INFINITY,
            3.0,
            -2.0,
            0.0,
            0.5,
            2.5,
            3.0,
        ];
        assert_eq!(max_clean(&row), 3.0);
        assert_eq!(argmax(&row), 2);
        assert_eq!(argmax(&[f32::NEG_INFINITY; 3]), 0);
        assert_eq!(argmax(&[0.0, f32::INFINITY, 1.0]), 1);
        let mut long = vec![0.0f32; 1001];
        long[13] = 2.0;
        long[9] = 2.0;
        long[1000] = 2.0;
        assert_eq!(argmax(&long), 9);
        long[1000] = 3.0;
        assert_eq!(argmax(&long), 1000);
        long[17] = f32::NAN;
        assert_eq!(argmax(&long), 1000);
        let lse = log_sum_exp(&[0.0, 2f32.ln(), 3f32.ln(), f32::NEG_INFINITY]);
        assert!((lse - 6f64.ln()).abs() < 1e-6);
        assert_eq!(log_sum_exp(&[f32::NEG_INFINITY; 2]), f64::NEG_INFINITY);
        let v: Vec<f32> = (0..1001).map(|i| i as f32).collect();
        assert_eq!(sum_f64(&v), 500_500.0);
    }
}
