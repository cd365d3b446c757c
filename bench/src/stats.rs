//! The summary statistics vLLM's benchmarks print, with numpy's definitions: the population
//! standard deviation and linearly interpolated percentiles. An empty sample reads as one zero,
//! as numpy does for `np.mean(xs or 0)`.

fn or_zero(xs: &[f64]) -> &[f64] {
    if xs.is_empty() {
        &[0.0]
    } else {
        xs
    }
}

pub fn mean(xs: &[f64]) -> f64 {
    let xs = or_zero(xs);
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Population standard deviation (numpy's default, ddof = 0).
pub fn std_dev(xs: &[f64]) -> f64 {
    let xs = or_zero(xs);
    let m = mean(xs);
    (xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / xs.len() as f64).sqrt()
}

pub fn median(xs: &[f64]) -> f64 {
    percentile(xs, 50.0)
}

/// The `p`-th percentile (0..=100), interpolating linearly between the closest ranks.
pub fn percentile(xs: &[f64], p: f64) -> f64 {
    let mut v = or_zero(xs).to_vec();
    v.sort_by(f64::total_cmp);
    let rank = (p.clamp(0.0, 100.0) / 100.0) * (v.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    v[lo] + (v[hi] - v[lo]) * (rank - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_numpy() {
        // Values checked against numpy 1.26: np.percentile([1,2,3,4,10], [10,50,99]) etc.
        let xs = [4.0, 1.0, 10.0, 3.0, 2.0];
        assert!((percentile(&xs, 10.0) - 1.4).abs() < 1e-12);
        assert!((median(&xs) - 3.0).abs() < 1e-12);
        assert!((percentile(&xs, 99.0) - 9.76).abs() < 1e-12);
        assert!((mean(&xs) - 4.0).abs() < 1e-12);
        assert!((std_dev(&xs) - 10f64.sqrt()).abs() < 1e-12);
        assert_eq!(mean(&[]), 0.0);
        assert_eq!(percentile(&[], 99.0), 0.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
    }
}
