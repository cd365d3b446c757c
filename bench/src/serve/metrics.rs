//! The serving metrics computed from every request's measurement, and vLLM's
//! `Serving Benchmark Result` block.

use std::io::Write;

use serde_json::{json, Map, Value};

use super::client::RequestOutput;
use crate::stats;

/// Mean, median, standard deviation and the selected percentiles of one metric, in ms.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub mean: f64,
    pub median: f64,
    pub std: f64,
    pub percentiles: Vec<(f64, f64)>,
}

impl Summary {
    pub fn of(seconds: &[f64], percentiles: &[f64]) -> Summary {
        Summary {
            mean: stats::mean(seconds) * 1000.0,
            median: stats::median(seconds) * 1000.0,
            std: stats::std_dev(seconds) * 1000.0,
            percentiles: percentiles
                .iter()
                .map(|&p| (p, stats::percentile(seconds, p) * 1000.0))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BenchmarkMetrics {
    pub completed: usize,
    pub failed: usize,
    pub total_input: usize,
    pub total_output: usize,
    pub request_throughput: f64,
    pub request_goodput: f64,
    pub output_throughput: f64,
    pub total_token_throughput: f64,
    pub ttft: Summary,
    /// Time per output token after the first: (E2EL - TTFT) / (output tokens - 1).
    pub tpot: Summary,
    pub itl: Summary,
    pub e2el: Summary,
    pub max_output_tokens_per_s: f64,
    pub max_concurrent_requests: usize,
}

/// Service level objectives for goodput, in ms: `ttft`, `tpot`, `e2el`.
pub type Goodput = Vec<(String, f64)>;

/// Parses `--goodput KEY:VALUE...`.
pub fn parse_goodput(pairs: &[String]) -> Result<Goodput, String> {
    let mut out = Vec::new();
    for pair in pairs {
        let bad = || {
            format!("Invalid format found for service level objectives: {pair:?}. Specify service level objectives for goodput as \"KEY:VALUE\" pairs, where the key is a metric name, and the value is a number in milliseconds.")
        };
        let (k, v) = pair.split_once(':').ok_or_else(bad)?;
        let v: f64 = v.trim().parse().map_err(|_| bad())?;
        if !["ttft", "tpot", "e2el"].contains(&k) {
            return Err(format!("Invalid metric name found, {k}: {v}. The service level objective name should be one of [\"ttft\", \"tpot\", \"e2el\"]."));
        }
        if v < 0.0 {
            return Err(format!("Invalid value found, {k}: {v}. The service level objective value should be non-negative."));
        }
        out.push((k.to_string(), v));
    }
    Ok(out)
}

/// Computes the metrics; also returns each request's output length (0 for failures).
/// `count_tokens` counts the generated text when the server did not report usage.
pub fn calculate(
    outputs: &[RequestOutput],
    dur_s: f64,
    count_tokens: &dyn Fn(&str) -> usize,
    percentiles: &[f64],
    goodput: &Goodput,
) -> (BenchmarkMetrics, Vec<usize>) {
    let mut output_lens = Vec::with_capacity(outputs.len());
    let (mut total_input, mut completed) = (0, 0);
    let (mut itls, mut tpots, mut all_tpots, mut ttfts, mut e2els) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for o in outputs {
        if !o.success {
            output_lens.push(0);
            continue;
        }
        let output_len = if o.output_tokens > 0 {
            o.output_tokens
        } else {
            count_tokens(&o.generated_text)
        };
        output_lens.push(output_len);
        total_input += o.prompt_len;
        let mut tpot = 0.0;
        if output_len > 1 {
            tpot = (o.latency - o.ttft) / (output_len - 1) as f64;
            tpots.push(tpot);
        }
        // A one-token answer counts as TPOT 0 for goodput.
        all_tpots.push(tpot);
        itls.extend_from_slice(&o.itl);
        ttfts.push(o.ttft);
        e2els.push(o.latency);
        completed += 1;
    }
    let good = (0..ttfts.len())
        .filter(|&i| {
            goodput.iter().all(|(k, slo_ms)| {
                let v = match k.as_str() {
                    "ttft" => ttfts[i],
                    "tpot" => all_tpots[i],
                    _ => e2els[i],
                };
                slo_ms / 1000.0 >= v
            })
        })
        .count();
    let good = if goodput.is_empty() { 0 } else { good };
    let (peak_tokens, peak_concurrency) = peaks(outputs);
    let total_output: usize = output_lens.iter().sum();
    let m = BenchmarkMetrics {
        completed,
        failed: outputs.len() - completed,
        total_input,
        total_output,
        request_throughput: completed as f64 / dur_s,
        request_goodput: good as f64 / dur_s,
        output_throughput: total_output as f64 / dur_s,
        total_token_throughput: (total_input + total_output) as f64 / dur_s,
        ttft: Summary::of(&ttfts, percentiles),
        tpot: Summary::of(&tpots, percentiles),
        itl: Summary::of(&itls, percentiles),
        e2el: Summary::of(&e2els, percentiles),
        max_output_tokens_per_s: peak_tokens,
        max_concurrent_requests: peak_concurrency,
    };
    (m, output_lens)
}

/// The most tokens that arrived within one whole second of the run (second buckets from the
/// first request's start), and the most requests in flight at any instant.
fn peaks(outputs: &[RequestOutput]) -> (f64, usize) {
    let ok: Vec<&RequestOutput> = outputs.iter().filter(|o| o.success).collect();
    let Some(min_start) = ok.iter().map(|o| o.start_time).reduce(f64::min) else {
        return (0.0, 0);
    };
    let max_end = ok
        .iter()
        .map(|o| o.start_time + o.latency)
        .fold(f64::MIN, f64::max);
    let buckets = (max_end - min_start).ceil() as usize + 1;
    let mut tokens = vec![0usize; buckets];
    let mut events = Vec::with_capacity(ok.len() * 2);
    for o in &ok {
        let mut t = o.start_time + o.ttft;
        for gap in std::iter::once(&0.0).chain(&o.itl) {
            t += gap;
            let bucket = (t - min_start).floor();
            if bucket >= 0.0 && (bucket as usize) < buckets {
                tokens[bucket as usize] += 1;
            }
        }
        events.push((o.start_time, 1i64));
        events.push((o.start_time + o.latency, -1i64));
    }
    // Half-open intervals: at equal times a departure goes before an arrival.
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut peak) = (0i64, 0i64);
    for (_, d) in events {
        now += d;
        peak = peak.max(now);
    }
    (tokens.into_iter().max().unwrap_or(0) as f64, peak as usize)
}

/// How the run was configured, for the report.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub max_concurrency: Option<usize>,
    pub request_rate: f64,
    pub duration: f64,
    pub goodput: bool,
    /// `ttft`, `tpot`, `itl`, `e2el`: which get a latency section.
    pub selected_metrics: Vec<String>,
}

fn row(out: &mut dyn Write, label: &str, value: impl std::fmt::Display) -> std::io::Result<()> {
    writeln!(out, "{:<40} {:<10}", label, value)
}

fn row2(out: &mut dyn Write, label: &str, value: f64) -> std::io::Result<()> {
    writeln!(out, "{:<40} {:<10.2}", label, value)
}

/// `99` for whole percentiles, `99.9` otherwise (the key and label vLLM uses).
pub fn percentile_word(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{}", p as i64)
    } else {
        format!("{p}")
    }
}

/// Prints the `Serving Benchmark Result` block and adds the metrics to `result`.
pub fn report(
    m: &BenchmarkMetrics,
    outputs: &[RequestOutput],
    info: &RunInfo,
    result: &mut Map<String, Value>,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let failures: Vec<&RequestOutput> = outputs.iter().filter(|o| !o.success).collect();
    if !failures.is_empty() {
        writeln!(
            out,
            "Failed requests during benchmark run detected (capping to 10):"
        )?;
        for (i, f) in failures.iter().take(10).enumerate() {
            writeln!(out, "Error {i}: {}", f.error)?;
        }
    }
    writeln!(out, "{:=^50}", " Serving Benchmark Result ")?;
    row(out, "Successful requests:", m.completed)?;
    row(out, "Failed requests:", m.failed)?;
    if let Some(c) = info.max_concurrency {
        row(out, "Maximum request concurrency:", c)?;
    }
    if info.request_rate.is_finite() {
        row2(out, "Request rate configured (RPS):", info.request_rate)?;
    }
    row2(out, "Benchmark duration (s):", info.duration)?;
    row(out, "Total input tokens:", m.total_input)?;
    row(out, "Total generated tokens:", m.total_output)?;
    row2(out, "Request throughput (req/s):", m.request_throughput)?;
    if info.goodput {
        row2(out, "Request goodput (req/s):", m.request_goodput)?;
    }
    row2(out, "Output token throughput (tok/s):", m.output_throughput)?;
    row2(
        out,
        "Peak output token throughput (tok/s):",
        m.max_output_tokens_per_s,
    )?;
    row2(
        out,
        "Peak concurrent requests:",
        m.max_concurrent_requests as f64,
    )?;
    row2(
        out,
        "Total token throughput (tok/s):",
        m.total_token_throughput,
    )?;

    let per_request: [(&str, Value); 4] = [
        (
            "input_lens",
            json!(outputs.iter().map(|o| o.prompt_len).collect::<Vec<_>>()),
        ),
        (
            "ttfts",
            json!(outputs.iter().map(|o| o.ttft).collect::<Vec<_>>()),
        ),
        (
            "itls",
            json!(outputs.iter().map(|o| o.itl.clone()).collect::<Vec<_>>()),
        ),
        (
            "latencies",
            json!(outputs.iter().map(|o| o.latency).collect::<Vec<_>>()),
        ),
    ];
    for (k, v) in per_request {
        result.insert(k.into(), v);
    }
    let fields = json!({
        "duration": info.duration,
        "completed": m.completed,
        "failed": m.failed,
        "total_input_tokens": m.total_input,
        "total_output_tokens": m.total_output,
        "request_throughput": m.request_throughput,
        "request_goodput": if info.goodput { json!(m.request_goodput) } else { Value::Null },
        "output_throughput": m.output_throughput,
        "total_token_throughput": m.total_token_throughput,
        "start_times": outputs.iter().map(|o| o.start_time).collect::<Vec<_>>(),
        "generated_texts": outputs.iter().map(|o| o.generated_text.as_str()).collect::<Vec<_>>(),
        "errors": outputs.iter().map(|o| o.error.as_str()).collect::<Vec<_>>(),
        "max_output_tokens_per_s": m.max_output_tokens_per_s,
        "max_concurrent_requests": m.max_concurrent_requests,
    });
    if let Value::Object(f) = fields {
        result.extend(f);
    }

    let sections: [(&str, &str, &str, &Summary); 4] = [
        ("ttft", "TTFT", "Time to First Token", &m.ttft),
        (
            "tpot",
            "TPOT",
            "Time per Output Token (excl. 1st token)",
            &m.tpot,
        ),
        ("itl", "ITL", "Inter-token Latency", &m.itl),
        ("e2el", "E2EL", "End-to-end Latency", &m.e2el),
    ];
    for (key, name, header, s) in sections {
        if !info.selected_metrics.iter().any(|x| x == key) {
            continue;
        }
        writeln!(out, "{:-^50}", header)?;
        row2(out, &format!("Mean {name} (ms):"), s.mean)?;
        row2(out, &format!("Median {name} (ms):"), s.median)?;
        result.insert(format!("mean_{key}_ms"), json!(s.mean));
        result.insert(format!("median_{key}_ms"), json!(s.median));
        result.insert(format!("std_{key}_ms"), json!(s.std));
        for (p, v) in &s.percentiles {
            let word = percentile_word(*p);
            row2(out, &format!("P{word} {name} (ms):"), *v)?;
            result.insert(format!("p{word}_{key}_ms"), json!(v));
        }
    }
    writeln!(out, "{}", "=".repeat(50))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(start: f64, ttft: f64, itl: &[f64], tokens: usize) -> RequestOutput {
        let latency = ttft + itl.iter().sum::<f64>();
        RequestOutput {
            success: true,
            start_time: start,
            ttft,
            itl: itl.to_vec(),
            latency,
            output_tokens: tokens,
            prompt_len: 10,
            ..Default::default()
        }
    }

    #[test]
    fn metrics_by_hand() {
        // Binary fractions keep the sums exact. Request a: TTFT 0.25 s, 3 more tokens 0.125 s
        // apart; b: starts as a ends, TTFT 0.5 s, one more token after 0.25 s, its output
        // counted from its text (3 tokens by the stand-in counter).
        let a = ok(0.0, 0.25, &[0.125, 0.125, 0.125], 4);
        let mut b = ok(0.625, 0.5, &[0.25], 0);
        b.generated_text = "x y z".into();
        let failed = RequestOutput {
            error: "boom".into(),
            ..Default::default()
        };
        let count = |t: &str| t.split_whitespace().count();
        let goodput = vec![("ttft".to_string(), 300.0)];
        let (m, lens) = calculate(
            &[a.clone(), b.clone(), failed],
            2.0,
            &count,
            &[50.0, 99.0],
            &goodput,
        );
        assert_eq!(lens, [4, 3, 0]);
        assert_eq!(
            (m.completed, m.failed, m.total_input, m.total_output),
            (2, 1, 20, 7)
        );
        assert_eq!(m.request_throughput, 1.0);
        assert_eq!(m.request_goodput, 0.5, "only a meets TTFT <= 300 ms");
        assert_eq!(m.output_throughput, 3.5);
        assert_eq!((m.ttft.mean, m.ttft.median), (375.0, 375.0));
        // TPOT: a (0.625 - 0.25) / 3 = 125 ms; b (0.75 - 0.5) / 2 = 125 ms.
        assert_eq!(m.tpot.mean, 125.0);
        // ITL: [125, 125, 125, 250] ms; P99 interpolates 97% of the way from 125 to 250.
        assert_eq!(m.itl.mean, 156.25);
        assert!((m.itl.percentiles[1].1 - 246.25).abs() < 1e-9);
        assert_eq!(m.e2el.mean, 687.5);
        // Tokens at 0.25, 0.375, 0.5, 0.625 (a) and 1.125, 1.375 (b): four in the first second.
        assert_eq!(m.max_output_tokens_per_s, 4.0);
        assert_eq!(m.max_concurrent_requests, 1, "a ends as b starts");
    }

    #[test]
    fn goodput_flags() {
        assert_eq!(
            parse_goodput(&["ttft:100".into(), "e2el:2.5".into()]).unwrap(),
            vec![("ttft".to_string(), 100.0), ("e2el".to_string(), 2.5)]
        );
        assert!(parse_goodput(&["itl:3".into()]).is_err());
        assert!(parse_goodput(&["ttft".into()]).is_err());
        assert!(parse_goodput(&["ttft:-1".into()]).is_err());
    }

    #[test]
    fn block_layout() {
        let a = ok(0.0, 0.2, &[0.1], 2);
        let (m, _) = calculate(std::slice::from_ref(&a), 1.0, &|_| 0, &[99.0], &Vec::new());
        let info = RunInfo {
            max_concurrency: Some(4),
            request_rate: f64::INFINITY,
            duration: 1.0,
            goodput: false,
            selected_metrics: vec!["ttft".into(), "tpot".into(), "itl".into()],
        };
        let mut out = Vec::new();
        let mut result = Map::new();
        report(&m, &[a], &info, &mut result, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "============ Serving Benchmark Result ============"
        );
        assert_eq!(
            lines[1],
            format!("{:<40} {:<10}", "Successful requests:", 1)
        );
        assert_eq!(lines[1].len(), 51);
        assert_eq!(
            lines[3],
            "Maximum request concurrency:             4         "
        );
        assert_eq!(
            lines[4],
            "Benchmark duration (s):                  1.00      "
        );
        assert!(lines.contains(&"---------------Time to First Token----------------"));
        assert!(lines.contains(&"-----Time per Output Token (excl. 1st token)------"));
        assert!(lines.contains(&"Mean TTFT (ms):                          200.00    "));
        assert!(lines.contains(&"P99 ITL (ms):                            100.00    "));
        assert!(!text.contains("E2EL"), "not selected");
        assert_eq!(*lines.last().unwrap(), "=".repeat(50));
        assert_eq!(result["p99_ttft_ms"], json!(200.0));
        assert_eq!(result["completed"], json!(1));
    }
}
