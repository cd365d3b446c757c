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
    let n = (xc * LOG2E + ROUND) - ROUND;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 5.000_000_1e-1;
    let e = p * r * r + r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) << 23) as u32);
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
    let mut m = chunks.remainder().iter().map(|&v| clean(v)).fold(f32::NEG_INFINITY, f32::max);
    for l in lanes {
        m = m.max(l);
    }
    m
}

/// Index of the largest entry, the lowest index on ties; 0 when every entry is masked.
pub(crate) fn argmax(row: &[f32]) -> u32 {
    let m = max_clean(row);
    if m == f32::NEG_INFINITY {
        return 0;
    }
    row.iter().position(|&v| clean(v) == m).unwrap_or(0) as u32
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
        let row = [1.0, f32::NAN, 3.0, f32::NEG_INFINITY, 3.0, -2.0, 0.0, 0.5, 2.5, 3.0];
        assert_eq!(max_clean(&row), 3.0);
        assert_eq!(argmax(&row), 2);
        assert_eq!(argmax(&[f32::NEG_INFINITY; 3]), 0);
        assert_eq!(argmax(&[0.0, f32::INFINITY, 1.0]), 1);
        let lse = log_sum_exp(&[0.0, 2f32.ln(), 3f32.ln(), f32::NEG_INFINITY]);
        assert!((lse - 6f64.ln()).abs() < 1e-6);
        assert_eq!(log_sum_exp(&[f32::NEG_INFINITY; 2]), f64::NEG_INFINITY);
        let v: Vec<f32> = (0..1001).map(|i| i as f32).collect();
        assert_eq!(sum_f64(&v), 500_500.0);
    }
}
#[cfg(test)]
mod tmp_bench {
    use super::*;
    use std::time::Instant;
    #[test]
    fn tmp_bench_kernels() {
        let v = 151_936usize;
        let row: Vec<f32> = (0..v).map(|i| ((i * 7919) % 1000) as f32 * 0.001).collect();
        let n = 300;
        let mut acc = 0.0f64;
        let t = Instant::now();
        for _ in 0..n { acc += max_clean(std::hint::black_box(&row)) as f64; }
        println!("max_clean {:.1}", t.elapsed().as_secs_f64() * 1e6 / n as f64);
        let t = Instant::now();
        for _ in 0..n { acc += argmax(std::hint::black_box(&row)) as f64; }
        println!("argmax {:.1}", t.elapsed().as_secs_f64() * 1e6 / n as f64);
        let mut w = Vec::new();
        let t = Instant::now();
        for _ in 0..n { exp_weights(std::hint::black_box(&row), 1.0, &mut w); acc += w[3] as f64; }
        println!("exp_weights {:.1}", t.elapsed().as_secs_f64() * 1e6 / n as f64);
        let t = Instant::now();
        for _ in 0..n { acc += sum_f64(std::hint::black_box(&w)); }
        println!("sum_f64 {:.1}", t.elapsed().as_secs_f64() * 1e6 / n as f64);
        let t = Instant::now();
        for _ in 0..n { acc += log_sum_exp(std::hint::black_box(&row)); }
        println!("lse {:.1} {acc}", t.elapsed().as_secs_f64() * 1e6 / n as f64);
    }
}
