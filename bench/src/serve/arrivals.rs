//! When each request of `bench serve` is sent: all at once for `--request-rate inf`, else after
//! gamma-distributed gaps of mean `1 / rate` (shape `--burstiness`: 1 is a Poisson process,
//! below 1 burstier, above 1 more even), scaled so the last request goes out at `n / rate`
//! whatever the seed, as vLLM does to keep runs of different seeds comparable.

use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Gamma};

use crate::BenchError;

/// `n` gaps between consecutive requests, in seconds, before any scaling.
pub fn intervals(
    n: usize,
    rate: f64,
    burstiness: f64,
    rng: &mut StdRng,
) -> Result<Vec<f64>, BenchError> {
    if rate.is_nan() || rate <= 0.0 {
        return Err(BenchError::Invalid(format!(
            "--request-rate must be positive, not {rate}"
        )));
    }
    if burstiness.is_nan() || burstiness <= 0.0 {
        return Err(BenchError::Invalid(format!(
            "A positive burstiness factor is expected, but given {burstiness}."
        )));
    }
    if rate.is_infinite() {
        return Ok(vec![0.0; n]);
    }
    if burstiness.is_infinite() {
        return Ok(vec![1.0 / rate; n]);
    }
    // Mean shape * scale = 1 / rate; variance 1 / (rate^2 * burstiness).
    let gamma = Gamma::new(burstiness, 1.0 / (rate * burstiness))
        .map_err(|e| BenchError::Invalid(format!("gamma distribution: {e}")))?;
    Ok((0..n).map(|_| gamma.sample(rng)).collect())
}

/// Send times of `n` requests, in seconds from the start of the run.
pub fn schedule(n: usize, rate: f64, burstiness: f64, seed: u64) -> Result<Vec<f64>, BenchError> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut t = intervals(n, rate, burstiness, &mut rng)?;
    for i in 1..t.len() {
        t[i] += t[i - 1];
    }
    if let Some(&last) = t.last() {
        if last > 0.0 && rate.is_finite() {
            let factor = n as f64 / rate / last;
            t.iter_mut().for_each(|x| *x *= factor);
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats;

    const DRAWS: usize = 10_000;

    #[test]
    fn poisson_gaps_have_mean_one_over_rate() {
        let rate = 4.0;
        let gaps = intervals(DRAWS, rate, 1.0, &mut StdRng::seed_from_u64(0)).unwrap();
        let mean = stats::mean(&gaps);
        assert!(
            (mean - 1.0 / rate).abs() / (1.0 / rate) < 0.03,
            "mean gap {mean}"
        );
        // Exponential: the standard deviation equals the mean.
        let cv = stats::std_dev(&gaps) / mean;
        assert!((cv - 1.0).abs() < 0.05, "coefficient of variation {cv}");
    }

    #[test]
    fn gamma_burstiness_keeps_the_mean_and_sets_the_spread() {
        let rate = 10.0;
        for burstiness in [0.25, 0.5, 2.0, 8.0] {
            let gaps = intervals(DRAWS, rate, burstiness, &mut StdRng::seed_from_u64(7)).unwrap();
            let mean = stats::mean(&gaps);
            assert!(
                (mean - 1.0 / rate).abs() / (1.0 / rate) < 0.03,
                "burstiness {burstiness}: mean gap {mean}"
            );
            // Gamma with shape k: coefficient of variation 1 / sqrt(k).
            let cv = stats::std_dev(&gaps) / mean;
            let want = 1.0 / burstiness.sqrt();
            assert!(
                (cv - want).abs() / want < 0.08,
                "burstiness {burstiness}: cv {cv}, want {want}"
            );
        }
    }

    #[test]
    fn schedules_are_seeded_and_scaled() {
        let a = schedule(100, 5.0, 1.0, 3).unwrap();
        assert_eq!(a, schedule(100, 5.0, 1.0, 3).unwrap());
        assert_ne!(a, schedule(100, 5.0, 1.0, 4).unwrap());
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
        assert!(
            (a[99] - 20.0).abs() < 1e-9,
            "the last request goes out at n / rate"
        );
        assert_eq!(schedule(3, f64::INFINITY, 1.0, 0).unwrap(), [0.0; 3]);
        assert_eq!(schedule(3, 2.0, f64::INFINITY, 0).unwrap(), [0.5, 1.0, 1.5]);
        assert!(schedule(3, 2.0, 0.0, 0).is_err());
        assert!(schedule(3, 0.0, 1.0, 0).is_err());
    }
}
