//! `bench serve` against a mock OpenAI server that paces its chunks: the first no earlier than
//! 200 ms after the request, then one every 50 ms at the earliest, and (optionally) a late usage
//! chunk.
//!
//! No assertion depends on how fast this machine is: a loaded box delays chunks by any amount.
//! The tests check what holds however late things run: the order of events (a chunk is never
//! seen before the mock wrote it, so TTFT and E2EL are at least the scripted minimums; requests
//! never overlap beyond `--max-concurrency`; every request lies within the benchmark duration),
//! and the metric arithmetic: every printed and saved statistic recomputed by hand from the
//! per-request timestamps the benchmark saved (`--save-detailed`). A systematic mistake (timing
//! from the wrong instant, counting the usage chunk as a token, TPOT including the first token)
//! breaks an identity below, whatever the timings were.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use regex::Regex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{sleep_until, Instant};

const FIRST_MS: u64 = 200;
const GAP_MS: u64 = 50;
/// Single-token words: the token count of the text equals the chunk count.
const WORDS: [&str; 5] = [" the", " and", " of", " to", " in"];

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: bench::serve::ServeArgs,
}

struct Mock {
    port: u16,
    requests: Arc<AtomicUsize>,
}

/// Starts the mock on 127.0.0.1 in its own thread and runtime. `usage`: whether streams end
/// with a usage chunk.
fn start_mock(usage: bool) -> Mock {
    let (tx, rx) = std::sync::mpsc::channel();
    let requests = Arc::new(AtomicUsize::new(0));
    let count = requests.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap().port()).unwrap();
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let count = count.clone();
                tokio::spawn(async move {
                    let _ = serve_connection(sock, usage, count).await;
                });
            }
        });
    });
    Mock {
        port: rx.recv().unwrap(),
        requests,
    }
}

/// Reads one request (head and body); `None` at the end of the connection.
async fn read_request(sock: &mut TcpStream) -> std::io::Result<Option<(String, String)>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = sock.read(&mut byte).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&byte[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = sock.read(&mut byte).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&byte[..n]);
    }
    let first_line = head.lines().next().unwrap_or_default().to_string();
    Ok(Some((
        first_line,
        String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string(),
    )))
}

async fn chunk(sock: &mut TcpStream, data: &str) -> std::io::Result<()> {
    let event = format!("data: {data}\n\n");
    sock.write_all(format!("{:x}\r\n{event}\r\n", event.len()).as_bytes())
        .await?;
    sock.flush().await
}

async fn serve_connection(
    mut sock: TcpStream,
    usage: bool,
    count: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    sock.set_nodelay(true)?;
    while let Some((line, body)) = read_request(&mut sock).await? {
        if line.starts_with("GET /v1/models") {
            let body = r#"{"object":"list","data":[{"id":"mock-model","object":"model","root":"mock-model"}]}"#;
            sock.write_all(format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len()).as_bytes()).await?;
            continue;
        }
        let start = Instant::now();
        count.fetch_add(1, Ordering::SeqCst);
        let req: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let chat = line.contains("/chat/completions");
        assert_eq!(req["stream"], true);
        assert_eq!(req["stream_options"]["include_usage"], true);
        sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n").await?;
        for (i, word) in WORDS.iter().enumerate() {
            sleep_until(start + Duration::from_millis(FIRST_MS + GAP_MS * i as u64)).await;
            let data = if chat {
                serde_json::json!({"choices": [{"index": 0, "delta": {"content": word}}]})
            } else {
                serde_json::json!({"choices": [{"index": 0, "text": word}]})
            };
            chunk(&mut sock, &data.to_string()).await?;
        }
        if usage {
            // Arrives late on purpose: it must not count as a token nor end the request.
            sleep_until(start + Duration::from_millis(FIRST_MS + GAP_MS * 6)).await;
            chunk(&mut sock, r#"{"choices":[],"usage":{"prompt_tokens":17,"completion_tokens":5,"total_tokens":22}}"#).await?;
        }
        chunk(&mut sock, "[DONE]").await?;
        sock.write_all(b"0\r\n\r\n").await?;
        sock.flush().await?;
    }
    Ok(())
}

fn tokenizer_path() -> Option<std::path::PathBuf> {
    engine::paths::test_model(engine::paths::DEFAULT_MODEL_FILE)
}

fn run_bench(extra: &str) -> (String, serde_json::Value) {
    static RUN: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "bench-serve-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::SeqCst)
    ));
    let tok = tokenizer_path().expect("checked by the caller");
    let argv = format!(
        "bench --dataset-name random --random-input-len 16 --num-prompts 4 --max-concurrency 2 --tokenizer {} --disable-tqdm \
         --percentile-metrics ttft,tpot,itl,e2el --metric-percentiles 50,99 --save-result --save-detailed \
         --result-dir {} --result-filename result.json {extra}",
        tok.display(),
        dir.display()
    );
    let cli = Cli::try_parse_from(argv.split_whitespace()).unwrap();
    let mut out = Vec::new();
    bench::serve::run(cli.args, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let saved = std::fs::read_to_string(dir.join("result.json")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (text, serde_json::from_str(&saved).unwrap())
}

/// The value of a `label   value` row of the result block.
fn field(text: &str, label: &str) -> f64 {
    let line = text
        .lines()
        .skip_while(|l| !l.starts_with("====="))
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} line in\n{text}"));
    assert_eq!(
        &line[..40].trim_end(),
        &label,
        "labels are padded to 40 columns: {line:?}"
    );
    line[41..]
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{line:?}"))
}

fn seconds(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// numpy's `percentile` (linear interpolation), written out for the test.
fn np_percentile(xs: &[f64], p: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = p / 100.0 * (v.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (rank - lo as f64)
}

fn np_mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Checks every timing of a run of 4 requests of 5 tokens, at most 2 at a time, against the
/// per-request timestamps it saved (see the module comment: order and arithmetic, no speed).
fn check_timings(text: &str, saved: &serde_json::Value) {
    let ttfts = seconds(&saved["ttfts"]);
    let latencies = seconds(&saved["latencies"]);
    let starts = seconds(&saved["start_times"]);
    let itls: Vec<Vec<f64>> = saved["itls"]
        .as_array()
        .unwrap()
        .iter()
        .map(seconds)
        .collect();
    assert_eq!(
        (ttfts.len(), latencies.len(), starts.len(), itls.len()),
        (4, 4, 4, 4)
    );
    let first_s = FIRST_MS as f64 / 1000.0;
    let last_s = (FIRST_MS + GAP_MS * (WORDS.len() as u64 - 1)) as f64 / 1000.0;
    for i in 0..4 {
        // Order: the first chunk cannot arrive before the mock wrote it, nor the last.
        assert!(ttfts[i] >= first_s, "request {i}: TTFT {} s", ttfts[i]);
        assert!(
            latencies[i] >= last_s,
            "request {i}: E2EL {} s",
            latencies[i]
        );
        assert_eq!(itls[i].len(), 4, "one gap per chunk after the first");
        assert!(itls[i].iter().all(|&g| g >= 0.0), "{:?}", itls[i]);
        // E2EL ends at the last text chunk, not at the late usage chunk: TTFT plus the gaps.
        let sum: f64 = ttfts[i] + itls[i].iter().sum::<f64>();
        assert!(
            (sum - latencies[i]).abs() < 1e-9,
            "request {i}: TTFT + ITLs = {sum}, E2EL = {}",
            latencies[i]
        );
    }
    // --max-concurrency 2: when a request is sent, at most one other is in flight.
    for i in 0..4 {
        let in_flight = (0..4)
            .filter(|&j| j != i && starts[j] <= starts[i] && starts[i] < starts[j] + latencies[j])
            .count();
        assert!(
            in_flight <= 1,
            "request {i} started with {in_flight} others running"
        );
    }
    // Every request lies within the measured duration.
    let duration = saved["duration"].as_f64().unwrap();
    let first_start = starts.iter().copied().fold(f64::INFINITY, f64::min);
    let last_end = (0..4).map(|i| starts[i] + latencies[i]).fold(0.0, f64::max);
    assert!(
        last_end - first_start <= duration + 1e-6,
        "{last_end} - {first_start} > {duration}"
    );
    assert!((saved["request_throughput"].as_f64().unwrap() - 4.0 / duration).abs() < 1e-9);
    assert!((saved["output_throughput"].as_f64().unwrap() - 20.0 / duration).abs() < 1e-9);
    assert!((field(text, "Benchmark duration (s):") - duration).abs() < 0.006);

    // The statistics, by hand from those timestamps (ms). TPOT excludes the first token.
    let tpots: Vec<f64> = (0..4)
        .map(|i| (latencies[i] - ttfts[i]) / (5 - 1) as f64)
        .collect();
    let all_itls: Vec<f64> = itls.concat();
    for (key, name, xs) in [
        ("ttft", "TTFT", &ttfts),
        ("tpot", "TPOT", &tpots),
        ("itl", "ITL", &all_itls),
        ("e2el", "E2EL", &latencies),
    ] {
        let ms: Vec<f64> = xs.iter().map(|x| x * 1000.0).collect();
        let mean = np_mean(&ms);
        let std = (ms.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / ms.len() as f64).sqrt();
        for (stat, label, want) in [
            ("mean", format!("Mean {name} (ms):"), mean),
            (
                "median",
                format!("Median {name} (ms):"),
                np_percentile(&ms, 50.0),
            ),
            ("p50", format!("P50 {name} (ms):"), np_percentile(&ms, 50.0)),
            ("p99", format!("P99 {name} (ms):"), np_percentile(&ms, 99.0)),
        ] {
            let got = saved[format!("{stat}_{key}_ms")].as_f64().unwrap();
            assert!(
                (got - want).abs() < 1e-6,
                "{stat}_{key}_ms: {got}, by hand {want}"
            );
            // Printed with two decimals.
            let printed = field(text, &label);
            assert!(
                (printed - want).abs() < 0.006,
                "{label} {printed}, by hand {want}"
            );
        }
        let got = saved[format!("std_{key}_ms")].as_f64().unwrap();
        assert!(
            (got - std).abs() < 1e-6,
            "std_{key}_ms: {got}, by hand {std}"
        );
    }
}

#[test]
fn completions_metrics_match_the_script() {
    if tokenizer_path().is_none() {
        return;
    }
    let mock = start_mock(true);
    let (text, saved) = run_bench(&format!(
        "--base-url http://127.0.0.1:{} --model mock-model --ready-check-timeout-sec 10",
        mock.port
    ));
    assert_eq!(
        mock.requests.load(Ordering::SeqCst),
        5,
        "the ready check's request plus four"
    );

    let line_re = Regex::new(r"^(\S.{38}\S|\S.*\S)\s+\S+\s*$").unwrap();
    let block: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("====="))
        .collect();
    assert_eq!(
        block[0], "============ Serving Benchmark Result ============",
        "{text}"
    );
    assert_eq!(*block.last().unwrap(), "=".repeat(50));
    for l in &block[1..block.len() - 1] {
        assert!(l.starts_with('-') || line_re.is_match(l), "{l:?}");
    }
    assert_eq!(field(&text, "Successful requests:"), 4.0);
    assert_eq!(field(&text, "Failed requests:"), 0.0);
    assert_eq!(field(&text, "Maximum request concurrency:"), 2.0);
    assert_eq!(
        field(&text, "Total input tokens:"),
        4.0 * 17.0,
        "prompt_tokens of the usage chunk"
    );
    assert_eq!(
        field(&text, "Total generated tokens:"),
        20.0,
        "completion_tokens of the usage chunk"
    );
    assert_eq!(field(&text, "Peak concurrent requests:"), 2.0);
    for label in [
        "Benchmark duration (s):",
        "Request throughput (req/s):",
        "Output token throughput (tok/s):",
        "Peak output token throughput (tok/s):",
        "Total token throughput (tok/s):",
    ] {
        assert!(field(&text, label) > 0.0, "{label}");
    }
    for header in [
        "Time to First Token",
        "Time per Output Token (excl. 1st token)",
        "Inter-token Latency",
        "End-to-end Latency",
    ] {
        assert!(
            text.lines()
                .any(|l| l.len() == 50 && l.starts_with('-') && l.contains(header)),
            "{header}"
        );
    }

    check_timings(&text, &saved);

    // The saved file: vLLM's keys, per-request detail with --save-detailed.
    for k in [
        "duration",
        "completed",
        "total_input_tokens",
        "total_output_tokens",
        "request_throughput",
        "output_throughput",
        "total_token_throughput",
        "mean_ttft_ms",
        "median_ttft_ms",
        "p99_ttft_ms",
        "mean_tpot_ms",
        "p50_itl_ms",
        "std_e2el_ms",
        "max_concurrent_requests",
        "max_output_tokens_per_s",
    ] {
        assert!(saved[k].is_number(), "{k}: {saved}");
    }
    assert_eq!(saved["backend"], "openai");
    assert_eq!(saved["request_rate"], "inf");
    assert_eq!(saved["max_concurrency"], 2);
    assert_eq!(saved["output_lens"], serde_json::json!([5, 5, 5, 5]));
    assert_eq!(saved["generated_texts"][0], WORDS.concat());
}

#[test]
fn chat_without_usage_counts_tokens_from_the_text() {
    if tokenizer_path().is_none() {
        return;
    }
    let mock = start_mock(false);
    // No --model: the first model of /v1/models is used. Poisson arrivals at 20 req/s.
    let (text, saved) = run_bench(&format!("--host 127.0.0.1 --port {} --backend openai-chat --endpoint /v1/chat/completions --request-rate 20 --seed 3", mock.port));
    assert!(
        text.contains("First model name: mock-model, first model id: mock-model"),
        "{text}"
    );
    assert!(text.contains("Traffic request rate: 20.0\nBurstiness factor: 1.0 (Poisson process)\nMaximum request concurrency: 2"), "{text}");
    assert_eq!(field(&text, "Request rate configured (RPS):"), 20.0);
    assert_eq!(
        field(&text, "Total generated tokens:"),
        20.0,
        "five single-token words per answer"
    );
    check_timings(&text, &saved);
    assert_eq!(saved["backend"], "openai-chat");
    assert_eq!(saved["request_rate"], 20.0);
    assert_eq!(
        mock.requests.load(Ordering::SeqCst),
        4,
        "no ready check by default"
    );
}

#[test]
fn unreachable_server_fails_the_ready_check() {
    let Some(tok) = tokenizer_path() else { return };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let argv = format!("bench --port {port} --model m --tokenizer {} --num-prompts 1 --random-input-len 8 --ready-check-timeout-sec 1 --disable-tqdm", tok.display());
    let cli = Cli::try_parse_from(argv.split_whitespace()).unwrap();
    let err = bench::serve::run(cli.args, &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("Initial test run failed"), "{err}");
}

/// `--url` (an alias of `--base-url`) takes the server URL as users type it, `/v1` or not.
#[test]
fn the_server_url_may_end_in_v1() {
    if tokenizer_path().is_none() {
        return;
    }
    let mock = start_mock(true);
    let (text, _) = run_bench(&format!(
        "--url http://127.0.0.1:{}/v1/ --model mock-model --ready-check-timeout-sec 10",
        mock.port
    ));
    assert_eq!(field(&text, "Successful requests:"), 4.0, "{text}");
    assert_eq!(field(&text, "Failed requests:"), 0.0, "{text}");
}
