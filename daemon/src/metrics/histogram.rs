//! Fixed-bucket histograms with Prometheus semantics, and the bucket layouts vLLM uses.

use std::sync::Arc;

/// `vllm:time_to_first_token_seconds`.
pub const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];

/// `vllm:inter_token_latency_seconds` and both time-per-output-token histograms.
pub const TOKEN_LATENCY_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];

/// End-to-end latency and the per-phase request times.
pub const REQUEST_LATENCY_BUCKETS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];

/// `vllm:iteration_tokens_total`.
pub const ITERATION_TOKENS_BUCKETS: &[f64] = &[
    1.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0,
];

/// `vllm:request_params_n`.
pub const PARAMS_N_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0];

/// prometheus-fastapi-instrumentator's `http_request_duration_highr_seconds`.
pub const HTTP_HIGHR_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0,
    7.5, 10.0, 30.0, 60.0,
];

/// prometheus-fastapi-instrumentator's `http_request_duration_seconds` (few buckets: it carries labels).
pub const HTTP_LOWR_BUCKETS: &[f64] = &[0.1, 0.5, 1.0];

/// 1, 2, 5, 10, 20, 50, … up to and including `max` (vLLM's layout for token-count histograms).
pub fn buckets_1_2_5(max: usize) -> Vec<f64> {
    let max = max as f64;
    let mut out = Vec::new();
    let mut scale = 1.0f64;
    loop {
        for m in [1.0, 2.0, 5.0] {
            let v = m * scale;
            if v > max {
                return out;
            }
            out.push(v);
        }
        scale *= 10.0;
    }
}

/// Per-bucket (not cumulative) counts; the cumulative view is built at render time so an
/// observation touches one slot instead of every bucket above it.
#[derive(Debug, Clone)]
pub struct Histogram {
    /// Upper bounds, strictly increasing, without +Inf. Shared: snapshots for rendering clone it.
    bounds: Arc<[f64]>,
    /// `counts[i]` observations fell in `(bounds[i-1], bounds[i]]`; the last slot is the +Inf bucket.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    pub fn new(bounds: &[f64]) -> Self {
        // A malformed layout would render buckets that are not cumulative; keep only an increasing
        // run of finite bounds (prometheus_client refuses such layouts outright).
        let mut clean: Vec<f64> = Vec::with_capacity(bounds.len());
        for &b in bounds {
            if b.is_finite() && clean.last().is_none_or(|&last| b > last) {
                clean.push(b);
            }
        }
        let n = clean.len();
        Histogram {
            bounds: clean.into(),
            counts: vec![0; n + 1],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, value: f64) {
        self.observe_n(value, 1);
    }

    /// `n` observations of the same value: lets a mean stand in for samples we do not have
    /// while keeping `_count` and `_sum` exact.
    pub fn observe_n(&mut self, value: f64, n: u64) {
        // NaN would poison `_sum` forever and belongs to no bucket.
        if n == 0 || value.is_nan() {
            return;
        }
        // `le` is inclusive: a value equal to a bound belongs to that bound's bucket.
        let idx = self.bounds.partition_point(|&b| b < value);
        self.counts[idx] += n;
        self.sum += value * n as f64;
        self.count += n;
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// `(upper bound, cumulative count)` per bucket, ending with `(+Inf, count)`.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let bounds = self
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY));
        bounds.zip(self.counts.iter().scan(0u64, |acc, &c| {
            *acc += c;
            Some(*acc)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_two_five_layout_stops_at_max() {
        assert_eq!(
            buckets_1_2_5(100),
            vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
        );
        assert_eq!(
            buckets_1_2_5(2048),
            vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0]
        );
        assert_eq!(buckets_1_2_5(4), vec![1.0, 2.0]);
        assert!(buckets_1_2_5(0).is_empty());
    }

    #[test]
    fn values_land_in_inclusive_buckets_and_accumulate() {
        let mut h = Histogram::new(&[1.0, 2.0, 5.0]);
        for v in [0.5, 1.0, 1.5, 5.0, 7.0] {
            h.observe(v);
        }
        let got: Vec<(f64, u64)> = h.cumulative().collect();
        assert_eq!(got, vec![(1.0, 2), (2.0, 3), (5.0, 4), (f64::INFINITY, 5)]);
        assert_eq!(h.count(), 5);
        assert_eq!(h.sum(), 15.0);
    }

    #[test]
    fn repeated_observations_and_nan() {
        let mut h = Histogram::new(&[0.1, 1.0]);
        h.observe_n(0.25, 4);
        h.observe(f64::NAN);
        h.observe_n(3.0, 0);
        let got: Vec<(f64, u64)> = h.cumulative().collect();
        assert_eq!(got, vec![(0.1, 0), (1.0, 4), (f64::INFINITY, 4)]);
        assert_eq!((h.count(), h.sum()), (4, 1.0));
    }

    #[test]
    fn malformed_bounds_are_dropped_not_rendered() {
        let h = Histogram::new(&[1.0, 1.0, f64::NAN, 0.5, 3.0, f64::INFINITY]);
        let bounds: Vec<f64> = h.cumulative().map(|(b, _)| b).collect();
        assert_eq!(bounds, vec![1.0, 3.0, f64::INFINITY]);
    }

    #[test]
    fn vllm_layouts_are_strictly_increasing() {
        for layout in [
            TTFT_BUCKETS,
            TOKEN_LATENCY_BUCKETS,
            REQUEST_LATENCY_BUCKETS,
            ITERATION_TOKENS_BUCKETS,
            PARAMS_N_BUCKETS,
            HTTP_HIGHR_BUCKETS,
            HTTP_LOWR_BUCKETS,
        ] {
            assert!(layout.windows(2).all(|w| w[0] < w[1]), "{layout:?}");
            assert_eq!(
                Histogram::new(layout).cumulative().count(),
                layout.len() + 1
            );
        }
        assert_eq!(
            (TTFT_BUCKETS[0], TTFT_BUCKETS[TTFT_BUCKETS.len() - 1]),
            (0.001, 2560.0)
        );
        assert_eq!(TOKEN_LATENCY_BUCKETS[TOKEN_LATENCY_BUCKETS.len() - 1], 80.0);
        assert_eq!(
            (
                REQUEST_LATENCY_BUCKETS[0],
                REQUEST_LATENCY_BUCKETS[REQUEST_LATENCY_BUCKETS.len() - 1]
            ),
            (0.3, 7680.0)
        );
    }
}
