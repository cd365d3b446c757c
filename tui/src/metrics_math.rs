//! The numbers the dashboard shows, computed from `/metrics` scrapes: counter rates that survive
//! server restarts, and quantiles from cumulative histogram buckets (as PromQL's
//! `histogram_quantile` does).

use std::collections::BTreeMap;

/// A cumulative histogram: `(upper bound, observations <= bound)` sorted by bound, last `+Inf`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    pub buckets: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
}

impl Histogram {
    /// The observations made between `older` and `self`. A smaller count means the server
    /// restarted in between, and then everything in `self` is new.
    pub fn since(&self, older: &Histogram) -> Histogram {
        let same_layout = self.buckets.len() == older.buckets.len()
            && self
                .buckets
                .iter()
                .zip(&older.buckets)
                .all(|(a, b)| a.0 == b.0);
        if self.count < older.count || !same_layout {
            return self.clone();
        }
        Histogram {
            buckets: self
                .buckets
                .iter()
                .zip(&older.buckets)
                .map(|(a, b)| (a.0, (a.1 - b.1).max(0.0)))
                .collect(),
            sum: self.sum - older.sum,
            count: self.count - older.count,
        }
    }

    pub fn quantile(&self, q: f64) -> Option<f64> {
        quantile(q, &self.buckets)
    }
}

/// The `q` quantile of cumulative buckets, interpolating linearly inside the bucket where the
/// rank falls. Ranks in the `+Inf` bucket answer the largest finite bound, since nothing
/// better is known. `None` without observations.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let rank = q * total;
    let mut lower = 0.0;
    let mut below = 0.0;
    for &(bound, count) in buckets {
        if count >= rank && count > below {
            if bound.is_infinite() {
                return Some(lower);
            }
            let lower_edge = if lower == 0.0 && bound <= 0.0 {
                bound
            } else {
                lower
            };
            return Some(lower_edge + (bound - lower_edge) * (rank - below) / (count - below));
        }
        if bound.is_finite() {
            lower = bound;
        }
        below = count;
    }
    Some(lower)
}

/// Per-second rate of a counter between two readings `dt` seconds apart. A reading lower than
/// the previous one means the counter restarted from zero, so all of `cur` happened since.
pub fn counter_rate(prev: f64, cur: f64, dt: f64) -> Option<f64> {
    if dt <= 0.0 {
        return None;
    }
    let delta = if cur < prev { cur } else { cur - prev };
    Some(delta / dt)
}

/// The parts of one `/metrics` scrape the dashboard uses, summed over label sets (engines).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub running: f64,
    pub waiting: f64,
    pub kv_cache_usage: f64,
    pub prompt_tokens: f64,
    pub generation_tokens: f64,
    pub preemptions: f64,
    pub prefix_queries: f64,
    pub prefix_hits: f64,
    pub success: BTreeMap<String, f64>,
    pub ttft: Histogram,
    pub itl: Histogram,
    pub e2e: Histogram,
}

/// prometheus-parse only accepts `\w` in metric names, but vLLM's names contain `:`; the
/// colon is rewritten to `_` in the name token only, so label values stay untouched.
fn sanitize_line(line: &str) -> String {
    let (prefix, rest) = if let Some(r) = line.strip_prefix("# TYPE ") {
        ("# TYPE ", r)
    } else if let Some(r) = line.strip_prefix("# HELP ") {
        ("# HELP ", r)
    } else if line.starts_with('#') {
        return line.to_string();
    } else {
        ("", line)
    };
    let end = rest.find(['{', ' ']).unwrap_or(rest.len());
    format!("{prefix}{}{}", rest[..end].replace(':', "_"), &rest[end..])
}

pub fn parse_snapshot(text: &str) -> Result<Snapshot, String> {
    let lines = text.lines().map(|l| Ok(sanitize_line(l)));
    let scrape =
        prometheus_parse::Scrape::parse(lines).map_err(|e| format!("bad /metrics text: {e}"))?;
    let mut s = Snapshot::default();
    let mut seen = false;
    for sample in &scrape.samples {
        let name = sample
            .metric
            .strip_prefix("vllm_")
            .unwrap_or(&sample.metric);
        let value = match &sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(counts) => {
                let target = match name {
                    "time_to_first_token_seconds" => &mut s.ttft,
                    "inter_token_latency_seconds" => &mut s.itl,
                    "e2e_request_latency_seconds" => &mut s.e2e,
                    _ => continue,
                };
                add_buckets(target, counts);
                continue;
            }
            prometheus_parse::Value::Summary(_) => continue,
        };
        seen = true;
        match name {
            "num_requests_running" => s.running += value,
            "num_requests_waiting" => s.waiting += value,
            "kv_cache_usage_perc" => s.kv_cache_usage = s.kv_cache_usage.max(value),
            "prompt_tokens_total" => s.prompt_tokens += value,
            "generation_tokens_total" => s.generation_tokens += value,
            "num_preemptions_total" => s.preemptions += value,
            "prefix_cache_queries_total" => s.prefix_queries += value,
            "prefix_cache_hits_total" => s.prefix_hits += value,
            "request_success_total" => {
                let reason = sample
                    .labels
                    .get("finished_reason")
                    .unwrap_or("?")
                    .to_string();
                *s.success.entry(reason).or_default() += value;
            }
            "time_to_first_token_seconds_sum" => s.ttft.sum += value,
            "time_to_first_token_seconds_count" => s.ttft.count += value,
            "inter_token_latency_seconds_sum" => s.itl.sum += value,
            "inter_token_latency_seconds_count" => s.itl.count += value,
            "e2e_request_latency_seconds_sum" => s.e2e.sum += value,
            "e2e_request_latency_seconds_count" => s.e2e.count += value,
            _ => {}
        }
    }
    if !seen {
        return Err("no vllm metrics in the /metrics answer".into());
    }
    Ok(s)
}

fn add_buckets(h: &mut Histogram, counts: &[prometheus_parse::HistogramCount]) {
    let mut incoming: Vec<(f64, f64)> = counts.iter().map(|c| (c.less_than, c.count)).collect();
    incoming.sort_by(|a, b| a.0.total_cmp(&b.0));
    if h.buckets.is_empty() {
        h.buckets = incoming;
        return;
    }
    for (b, (_, c)) in h.buckets.iter_mut().zip(incoming) {
        b.1 += c;
    }
}

/// A time series where `None` marks a scrape that failed (drawn as a gap).
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub points: Vec<(f64, Option<f64>)>,
}

impl Series {
    pub fn push(&mut self, t: f64, v: Option<f64>, keep_secs: f64) {
        self.points.push((t, v));
        let cutoff = t - keep_secs;
        let first_kept = self
            .points
            .iter()
            .position(|p| p.0 >= cutoff)
            .unwrap_or(self.points.len());
        self.points.drain(..first_kept);
    }

    /// Runs of consecutive known points, one chart line each, so that gaps stay empty.
    pub fn segments(&self) -> Vec<Vec<(f64, f64)>> {
        let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
        let mut cur = Vec::new();
        for &(t, v) in &self.points {
            match v {
                Some(v) => cur.push((t, v)),
                None if !cur.is_empty() => out.push(std::mem::take(&mut cur)),
                None => {}
            }
        }
        if !cur.is_empty() {
            out.push(cur);
        }
        out
    }

    pub fn max(&self) -> f64 {
        self.points.iter().filter_map(|p| p.1).fold(0.0, f64::max)
    }

    pub fn last(&self) -> Option<f64> {
        self.points.last().and_then(|p| p.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_plain_and_across_reset() {
        // 100 -> 160 tokens in 2 s = 30 tok/s.
        assert_eq!(counter_rate(100.0, 160.0, 2.0), Some(30.0));
        // Restart: counter fell from 500 to 40, so 40 tokens were made in the 4 s: 10 tok/s.
        assert_eq!(counter_rate(500.0, 40.0, 4.0), Some(10.0));
        assert_eq!(counter_rate(5.0, 5.0, 1.0), Some(0.0));
        assert_eq!(counter_rate(5.0, 6.0, 0.0), None);
    }

    #[test]
    fn quantiles_by_hand() {
        // 10 observations: 2 <= 0.1, 6 <= 0.5 (4 in (0.1,0.5]), 9 <= 1, 1 above 1.
        let b = vec![(0.1, 2.0), (0.5, 6.0), (1.0, 9.0), (f64::INFINITY, 10.0)];
        // p50: rank 5 falls in (0.1,0.5] with 2 below and 4 inside: 0.1 + 0.4 * 3/4 = 0.4.
        assert!((quantile(0.5, &b).unwrap() - 0.4).abs() < 1e-12);
        // p90: rank 9 is the top of (0.5,1]: 0.5 + 0.5 * 3/3 = 1.0.
        assert!((quantile(0.9, &b).unwrap() - 1.0).abs() < 1e-12);
        // p99: rank 9.9 lands in +Inf: the largest finite bound, 1.0.
        assert_eq!(quantile(0.99, &b), Some(1.0));
        // p10: rank 1 in the first bucket, interpolated from 0: 0.1 * 1/2 = 0.05.
        assert!((quantile(0.1, &b).unwrap() - 0.05).abs() < 1e-12);
        assert_eq!(quantile(0.5, &[(0.1, 0.0), (f64::INFINITY, 0.0)]), None);
    }

    #[test]
    fn histogram_delta_and_reset() {
        let old = Histogram {
            buckets: vec![(1.0, 2.0), (f64::INFINITY, 3.0)],
            sum: 2.0,
            count: 3.0,
        };
        let new = Histogram {
            buckets: vec![(1.0, 6.0), (f64::INFINITY, 7.0)],
            sum: 5.0,
            count: 7.0,
        };
        let d = new.since(&old);
        assert_eq!(d.buckets, vec![(1.0, 4.0), (f64::INFINITY, 4.0)]);
        assert_eq!(d.count, 4.0);
        // After a restart the newer histogram is smaller: it is all new.
        let restarted = Histogram {
            buckets: vec![(1.0, 1.0), (f64::INFINITY, 1.0)],
            sum: 0.5,
            count: 1.0,
        };
        assert_eq!(restarted.since(&new), restarted);
        // All 4 new observations are <= 1.0: p50 = 0.5 by interpolation from 0.
        assert!((d.quantile(0.5).unwrap() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn parses_vllm_names_with_colons() {
        let text = "# HELP vllm:num_requests_running Running.\n# TYPE vllm:num_requests_running gauge\n\
vllm:num_requests_running{engine=\"0\",model_name=\"m:x\"} 3\n\
# TYPE vllm:generation_tokens counter\nvllm:generation_tokens_total{engine=\"0\",model_name=\"m\"} 42\n\
vllm:request_success_total{engine=\"0\",finished_reason=\"stop\",model_name=\"m\"} 5\n\
vllm:request_success_total{engine=\"0\",finished_reason=\"length\",model_name=\"m\"} 2\n\
# TYPE vllm:time_to_first_token_seconds histogram\n\
vllm:time_to_first_token_seconds_bucket{engine=\"0\",le=\"0.1\",model_name=\"m\"} 1\n\
vllm:time_to_first_token_seconds_bucket{engine=\"0\",le=\"+Inf\",model_name=\"m\"} 4\n\
vllm:time_to_first_token_seconds_sum{engine=\"0\",model_name=\"m\"} 0.9\n\
vllm:time_to_first_token_seconds_count{engine=\"0\",model_name=\"m\"} 4\n";
        let s = parse_snapshot(text).unwrap();
        assert_eq!(s.running, 3.0);
        assert_eq!(s.generation_tokens, 42.0);
        assert_eq!(s.success.get("stop"), Some(&5.0));
        assert_eq!(s.success.get("length"), Some(&2.0));
        assert_eq!(s.ttft.buckets, vec![(0.1, 1.0), (f64::INFINITY, 4.0)]);
        assert_eq!(s.ttft.count, 4.0);
        assert!(parse_snapshot("hello").is_err());
    }

    #[test]
    fn series_gaps_become_segments() {
        let mut s = Series::default();
        for (t, v) in [
            (0.0, Some(1.0)),
            (1.0, Some(2.0)),
            (2.0, None),
            (3.0, Some(4.0)),
        ] {
            s.push(t, v, 60.0);
        }
        assert_eq!(
            s.segments(),
            vec![vec![(0.0, 1.0), (1.0, 2.0)], vec![(3.0, 4.0)]]
        );
        s.push(100.0, Some(5.0), 60.0);
        assert_eq!(s.points.len(), 1);
    }
}
