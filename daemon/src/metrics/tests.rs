use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use engine::request::{FinishReason, RequestTimes};
use engine::stats::{EngineStats, FinishedRequestStats, StepStats};

use super::*;

pub(super) const BASE: &str = "engine=\"0\",model_name=\"m\"";

/// The value of the sample written exactly as `series` (name plus label block), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

pub(super) fn get(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
}

pub(super) fn snapshot(
    prompt: u64,
    generation: u64,
    finished: &[(&'static str, u64)],
) -> EngineStats {
    EngineStats {
        num_prompt_tokens: prompt,
        num_generation_tokens: generation,
        finished_by_reason: finished.iter().copied().collect::<BTreeMap<_, _>>(),
        ..Default::default()
    }
}

/// A request that arrived at `t0`, was scheduled, produced `outputs` tokens and finished;
/// offsets in milliseconds.
pub(super) fn request(
    t0: Instant,
    sched: u64,
    first: u64,
    last: u64,
    fin: u64,
    outputs: usize,
) -> FinishedRequestStats {
    let at = |ms: u64| Some(t0 + Duration::from_millis(ms));
    FinishedRequestStats {
        reason: FinishReason::Stop,
        times: RequestTimes {
            arrival: t0,
            first_scheduled: at(sched),
            first_token: at(first),
            last_token: at(last),
            finished: at(fin),
        },
        num_prompt_tokens: 12,
        num_output_tokens: outputs,
        num_cached_tokens: 4,
        max_tokens: 64,
    }
}

pub(super) fn metrics() -> Metrics {
    Metrics::new("m", 100, CacheConfigInfo::default())
}

#[test]
fn counters_move_by_the_snapshot_deltas_and_survive_an_engine_restart() {
    let m = metrics();
    m.observe_engine(&snapshot(100, 20, &[("stop", 2)]), &[]);
    let t = m.render();
    assert_eq!(
        get(&t, &format!("vllm:prompt_tokens_total{{{BASE}}}")),
        100.0
    );
    assert_eq!(
        get(&t, &format!("vllm:generation_tokens_total{{{BASE}}}")),
        20.0
    );

    m.observe_engine(&snapshot(250, 20, &[("stop", 3), ("length", 1)]), &[]);
    let t = m.render();
    assert_eq!(
        get(&t, &format!("vllm:prompt_tokens_total{{{BASE}}}")),
        250.0
    );
    assert_eq!(
        get(
            &t,
            "vllm:request_success_total{engine=\"0\",finished_reason=\"stop\",model_name=\"m\"}"
        ),
        3.0
    );

    // Restarted engine: counts from zero again; what it reports now is all new.
    m.observe_engine(&snapshot(30, 5, &[("abort", 1)]), &[]);
    m.observe_engine(&snapshot(40, 5, &[("abort", 1), ("stop", 1)]), &[]);
    let t = m.render();
    assert_eq!(
        get(&t, &format!("vllm:prompt_tokens_total{{{BASE}}}")),
        290.0
    );
    assert_eq!(
        get(&t, &format!("vllm:generation_tokens_total{{{BASE}}}")),
        25.0
    );
    let reason = |r: &str| {
        get(&t, &format!("vllm:request_success_total{{engine=\"0\",finished_reason=\"{r}\",model_name=\"m\"}}"))
    };
    assert_eq!(
        (reason("stop"), reason("length"), reason("abort")),
        (4.0, 1.0, 1.0)
    );
}

#[test]
fn request_success_series_exist_before_any_request() {
    let t = metrics().render();
    for r in FINISH_REASONS {
        assert_eq!(get(&t, &format!("vllm:request_success_total{{engine=\"0\",finished_reason=\"{r}\",model_name=\"m\"}}")), 0.0);
    }
    assert!(t.contains("# TYPE vllm:request_success_total counter\n"));
    assert!(t.contains("# TYPE vllm:request_success_created gauge\n"));
}

#[test]
fn gauges_follow_the_latest_snapshot() {
    let m = metrics();
    let s = EngineStats {
        num_running: 3,
        num_waiting: 7,
        kv_cache_usage: 0.25,
        ..Default::default()
    };
    m.observe_engine(&s, &[]);
    m.observe_engine(
        &EngineStats {
            num_running: 1,
            kv_cache_usage: f64::NAN,
            ..Default::default()
        },
        &[],
    );
    let t = m.render();
    assert_eq!(
        get(&t, &format!("vllm:num_requests_running{{{BASE}}}")),
        1.0
    );
    assert_eq!(
        get(&t, &format!("vllm:num_requests_waiting{{{BASE}}}")),
        0.0
    );
    assert_eq!(get(&t, &format!("vllm:kv_cache_usage_perc{{{BASE}}}")), 0.0);
}

#[test]
fn finished_requests_fill_the_latency_histograms() {
    let m = metrics();
    let t0 = Instant::now();
    // queue 0.2 s, prefill 0.1 s, 5 tokens over 0.36 s of decode, finished 0.01 s after the last.
    let a = request(t0, 200, 300, 660, 670, 5);
    // queue 2 s, prefill 1 s, a single token.
    let b = request(t0, 2000, 3000, 3000, 3000, 1);
    m.observe_engine(&EngineStats::default(), &[a, b]);
    let t = m.render();
    let h = |name: &str, le: &str| {
        get(
            &t,
            &format!("vllm:{name}_bucket{{engine=\"0\",le=\"{le}\",model_name=\"m\"}}"),
        )
    };
    let count = |name: &str| get(&t, &format!("vllm:{name}_count{{{BASE}}}"));
    let sum = |name: &str| get(&t, &format!("vllm:{name}_sum{{{BASE}}}"));

    // TTFT: 0.3 and 3.0.
    assert_eq!(
        (
            h("time_to_first_token_seconds", "0.25"),
            h("time_to_first_token_seconds", "0.5")
        ),
        (0.0, 1.0)
    );
    assert_eq!(
        (
            h("time_to_first_token_seconds", "2.5"),
            h("time_to_first_token_seconds", "5.0")
        ),
        (1.0, 2.0)
    );
    assert!((sum("time_to_first_token_seconds") - 3.3).abs() < 1e-9);
    // Inter-token: request a has 4 gaps of 0.09 s; b has none.
    assert_eq!(count("inter_token_latency_seconds"), 4.0);
    assert_eq!(
        (
            h("inter_token_latency_seconds", "0.075"),
            h("inter_token_latency_seconds", "0.1")
        ),
        (0.0, 4.0)
    );
    assert!((sum("inter_token_latency_seconds") - 0.36).abs() < 1e-9);
    assert_eq!(count("time_per_output_token_seconds"), 4.0);
    // Per-request mean: 0.09 for a, 0 for b (fewer than two tokens).
    assert_eq!(count("request_time_per_output_token_seconds"), 2.0);
    assert_eq!(h("request_time_per_output_token_seconds", "0.01"), 1.0);
    // Phases.
    assert_eq!(
        (
            h("e2e_request_latency_seconds", "0.8"),
            h("e2e_request_latency_seconds", "5.0")
        ),
        (1.0, 2.0)
    );
    assert!((sum("e2e_request_latency_seconds") - 3.67).abs() < 1e-9);
    assert_eq!(
        (
            h("request_queue_time_seconds", "0.3"),
            h("request_queue_time_seconds", "2.0")
        ),
        (1.0, 2.0)
    );
    assert!((sum("request_prefill_time_seconds") - 1.1).abs() < 1e-9);
    assert!((sum("request_decode_time_seconds") - 0.36).abs() < 1e-9);
    assert!((sum("request_inference_time_seconds") - 1.46).abs() < 1e-9);
    // Token counts (max_model_len 100: buckets 1 … 100).
    assert_eq!(sum("request_prompt_tokens"), 24.0);
    assert_eq!(
        (
            h("request_generation_tokens", "1.0"),
            h("request_generation_tokens", "5.0")
        ),
        (1.0, 2.0)
    );
    assert_eq!(h("request_generation_tokens", "+Inf"), 2.0);
    assert_eq!(sum("request_prefill_kv_computed_tokens"), 16.0);
    assert!(
        !t.contains("le=\"200.0\""),
        "1-2-5 buckets stop at max_model_len"
    );
}

#[test]
fn phases_a_request_never_reached_are_not_observed() {
    let m = metrics();
    let t0 = Instant::now();
    let mut aborted = request(t0, 0, 0, 0, 500, 0);
    aborted.reason = FinishReason::Abort;
    aborted.times.first_scheduled = None;
    aborted.times.first_token = None;
    aborted.times.last_token = None;
    m.observe_engine(&snapshot(0, 0, &[("abort", 1)]), &[aborted]);
    let t = m.render();
    let count = |name: &str| get(&t, &format!("vllm:{name}_count{{{BASE}}}"));
    assert_eq!(count("e2e_request_latency_seconds"), 1.0);
    for name in [
        "time_to_first_token_seconds",
        "request_queue_time_seconds",
        "request_prefill_time_seconds",
        "request_decode_time_seconds",
    ] {
        assert_eq!(count(name), 0.0, "{name}");
    }
}

#[test]
fn engine_measured_latencies_replace_the_derived_ones() {
    let m = metrics();
    let t0 = Instant::now();
    let lat = TokenLatencies {
        time_to_first_token: &[0.05],
        inter_token: &[0.02, 0.3, 0.3],
    };
    m.observe_engine_with_latencies(
        &EngineStats::default(),
        &[request(t0, 200, 300, 660, 670, 5)],
        lat,
    );
    let t = m.render();
    let count = |name: &str| get(&t, &format!("vllm:{name}_count{{{BASE}}}"));
    assert_eq!(count("time_to_first_token_seconds"), 1.0);
    assert_eq!(count("inter_token_latency_seconds"), 3.0);
    assert_eq!(count("time_per_output_token_seconds"), 3.0);
    assert!(
        (get(
            &t,
            &format!("vllm:inter_token_latency_seconds_sum{{{BASE}}}")
        ) - 0.62)
            .abs()
            < 1e-9
    );
    assert_eq!(count("e2e_request_latency_seconds"), 1.0);
}

#[test]
fn steps_and_request_params() {
    let m = metrics();
    m.observe_step(&StepStats {
        num_prompt_tokens: 30,
        num_generation_tokens: 2,
        num_scheduled_tokens: 31,
        ..Default::default()
    });
    m.observe_step(&StepStats::default());
    m.observe_request_params(1, Some(16));
    m.observe_request_params(3, None);
    let t = m.render();
    let h = |name: &str, le: &str| {
        get(
            &t,
            &format!("vllm:{name}_bucket{{engine=\"0\",le=\"{le}\",model_name=\"m\"}}"),
        )
    };
    assert_eq!(
        get(&t, &format!("vllm:iteration_tokens_total_count{{{BASE}}}")),
        1.0
    );
    assert_eq!(
        (
            h("iteration_tokens_total", "16.0"),
            h("iteration_tokens_total", "32.0")
        ),
        (0.0, 1.0)
    );
    assert_eq!(
        (h("request_params_n", "1.0"), h("request_params_n", "5.0")),
        (1.0, 2.0)
    );
    assert_eq!(
        get(
            &t,
            &format!("vllm:request_params_max_tokens_count{{{BASE}}}")
        ),
        1.0
    );
    assert_eq!(h("request_params_max_tokens", "20.0"), 1.0);
}

#[test]
fn model_names_are_escaped_in_every_series() {
    let name = "we\"ird\\model\nname";
    let t = Metrics::new(name, 10, CacheConfigInfo::default()).render();
    let escaped = "model_name=\"we\\\"ird\\\\model\\nname\"";
    assert!(t.contains(&format!(
        "vllm:prompt_tokens_total{{engine=\"0\",{escaped}}} 0.0\n"
    )));
    for line in t.lines().filter(|l| l.starts_with("vllm:")) {
        assert!(line.contains(escaped), "{line}");
    }
    // A raw line feed would split a sample in two: every line must be a comment or a sample.
    assert!(
        t.lines()
            .all(|l| l.starts_with('#') || l.contains("} ") || l.starts_with("http_")),
        "{t}"
    );
}

#[test]
fn every_family_has_help_and_type() {
    let t = metrics().render();
    let types: Vec<&str> = t
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .collect();
    let helps: Vec<&str> = t
        .lines()
        .filter_map(|l| l.strip_prefix("# HELP "))
        .collect();
    assert_eq!(types.len(), helps.len());
    for (ty, help) in types.iter().zip(&helps) {
        let name = ty.split(' ').next().unwrap_or_default();
        assert!(
            help.starts_with(&format!("{name} ")) && help.len() > name.len() + 1,
            "{help}"
        );
    }
    for family in [
        "vllm:num_requests_running gauge",
        "vllm:num_requests_waiting gauge",
        "vllm:kv_cache_usage_perc gauge",
        "vllm:prefix_cache_queries_total counter",
        "vllm:prefix_cache_hits_total counter",
        "vllm:num_preemptions_total counter",
        "vllm:prompt_tokens_total counter",
        "vllm:generation_tokens_total counter",
        "vllm:time_to_first_token_seconds histogram",
        "vllm:inter_token_latency_seconds histogram",
        "vllm:e2e_request_latency_seconds histogram",
        "vllm:cache_config_info gauge",
        "http_requests_total counter",
        "http_request_duration_seconds histogram",
    ] {
        assert!(types.contains(&family), "{family}");
    }
}

#[test]
fn cache_config_info_prints_values_as_python_does() {
    let info = CacheConfigInfo {
        num_gpu_blocks: 1234,
        enable_prefix_caching: false,
        extra: vec![
            ("kv_offloading".into(), "x".into()),
            ("bad-name".into(), "y".into()),
            ("block_size".into(), "9".into()),
        ],
        ..Default::default()
    };
    let t = Metrics::new("m", 10, info).render();
    let line = t
        .lines()
        .find(|l| l.starts_with("vllm:cache_config_info{"))
        .unwrap_or_default();
    for part in [
        "block_size=\"16\"",
        "enable_prefix_caching=\"False\"",
        "gpu_memory_utilization=\"0.9\"",
        "num_gpu_blocks=\"1234\"",
        "sliding_window=\"None\"",
        "swap_space=\"4.0\"",
        "kv_offloading=\"x\"",
        "engine=\"0\"",
        "model_name=\"m\"",
    ] {
        assert!(line.contains(part), "{part} missing from {line}");
    }
    assert!(
        !line.contains("bad-name") && !line.contains("block_size=\"9\""),
        "{line}"
    );
    assert!(line.ends_with("} 1.0"), "{line}");
}

#[test]
fn http_requests_are_grouped_like_the_instrumentator() {
    let m = metrics();
    m.observe_http("POST", "/v1/chat/completions", 200, 0.3);
    m.observe_http("POST", "/v1/chat/completions", 201, 0.05);
    m.observe_http("POST", "/v1/chat/completions", 400, 2.0);
    m.observe_http("GET", "", 404, 0.001);
    m.observe_http("BREW", "/v1/models", 405, 0.001);
    m.observe_http("GET", "/metrics", 200, 0.001);
    m.observe_http("GET", "/health", 200, 0.001);
    m.observe_http("POST", "/v1/load_lora_adapter", 200, 0.001);
    let t = m.render();
    let total = |h: &str, me: &str, s: &str| {
        sample(
            &t,
            &format!("http_requests_total{{handler=\"{h}\",method=\"{me}\",status=\"{s}\"}}"),
        )
    };
    assert_eq!(total("/v1/chat/completions", "POST", "2xx"), Some(2.0));
    assert_eq!(total("/v1/chat/completions", "POST", "4xx"), Some(1.0));
    assert_eq!(total("none", "GET", "4xx"), Some(1.0));
    assert_eq!(total("/v1/models", "OTHER", "4xx"), Some(1.0));
    assert!(
        !t.contains("handler=\"/metrics\"")
            && !t.contains("handler=\"/health\"")
            && !t.contains("load_lora")
    );
    let lowr = |le: &str| {
        get(&t, &format!("http_request_duration_seconds_bucket{{handler=\"/v1/chat/completions\",le=\"{le}\",method=\"POST\"}}"))
    };
    assert_eq!(
        (lowr("0.1"), lowr("0.5"), lowr("1.0"), lowr("+Inf")),
        (1.0, 2.0, 2.0, 3.0)
    );
    assert_eq!(get(&t, "http_request_duration_highr_seconds_count"), 5.0);
    assert!((get(&t, "http_request_duration_highr_seconds_sum") - 2.352).abs() < 1e-9);
}

#[test]
fn http_series_stay_bounded() {
    let m = metrics();
    for i in 0..2 * MAX_HTTP_SERIES {
        m.observe_http("GET", &format!("/raw/{i}"), 200, 0.01);
    }
    let t = m.render();
    let series = t
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .count();
    assert!(series <= MAX_HTTP_SERIES / 2 + 1, "{series}");
    assert_eq!(
        get(&t, "http_request_duration_highr_seconds_count"),
        (2 * MAX_HTTP_SERIES) as f64
    );
}

/// A known workload, checked by `scripts/check_metrics.py` with prometheus_client's own parser.
#[test]
fn prometheus_client_parses_the_output() {
    let ok = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        // scripts/test.sh puts the test venv (tests/python/requirements.txt) first on PATH.
        engine::paths::missing_test_dependency(
            "python3 with prometheus_client is not on PATH (scripts/test.sh makes target/pyenv)",
        );
        return;
    }
    // Quote, backslash and line feed: the parser must read back exactly this name.
    let name = "test/model \"q\" \\ \n2";
    let m = Metrics::new(
        name,
        2048,
        CacheConfigInfo {
            num_gpu_blocks: 512,
            ..Default::default()
        },
    );
    let t0 = Instant::now();
    let finished = [
        request(t0, 200, 300, 660, 670, 5),
        request(t0, 2000, 3000, 3000, 3000, 1),
    ];
    let mut s = snapshot(1234, 6, &[("stop", 2)]);
    s.prefix_cache_queries = 24;
    s.prefix_cache_hits = 8;
    s.num_preemptions = 1;
    m.observe_engine(&s, &finished);
    m.observe_request_params(2, Some(64));
    m.observe_http("POST", "/v1/completions", 200, 0.7);

    let path = std::env::temp_dir().join(format!(
        "vllmd-metrics-{}-{:?}.txt",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&path, m.render()).expect("write the rendered metrics");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/check_metrics.py");
    let run = |expects: &[&str]| {
        let mut cmd = Command::new("python3");
        cmd.arg(&script).arg(&path).args(["--model-name", name]);
        for e in expects {
            cmd.args(["--expect", e]);
        }
        cmd.output().expect("run check_metrics.py")
    };
    let good = run(&[
        "vllm:prompt_tokens_total=1234",
        "vllm:generation_tokens_total=6",
        "vllm:prefix_cache_hits_total=8",
        "vllm:num_preemptions_total=1",
        "vllm:request_success_total{finished_reason=\"stop\"}=2",
        "vllm:request_success_total=2",
        "vllm:e2e_request_latency_seconds_count=2",
        "vllm:inter_token_latency_seconds_count=4",
        "vllm:time_to_first_token_seconds_bucket{le=\"0.5\"}=1",
        "vllm:request_params_n_sum=2",
        "vllm:e2e_request_latency_seconds_sum>=3.6",
        "http_requests_total{handler=\"/v1/completions\",status=\"2xx\"}=1",
    ]);
    let bad = run(&["vllm:prompt_tokens_total=1235"]);
    let missing = run(&["vllm:no_such_metric_total=0"]);
    let _ = std::fs::remove_file(&path);
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert!(
        good.status.success(),
        "check_metrics.py rejected the output:\n{}",
        text(&good)
    );
    assert!(
        !bad.status.success(),
        "a wrong --expect must fail:\n{}",
        text(&bad)
    );
    assert!(
        text(&bad).contains("vllm:prompt_tokens_total"),
        "{}",
        text(&bad)
    );
    assert!(
        !missing.status.success(),
        "an absent sample must fail:\n{}",
        text(&missing)
    );
}
