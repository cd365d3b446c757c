//! The Prometheus `/metrics` of `vllmd`: vLLM v1's metric families, names, labels, bucket layouts
//! and text layout, fed from engine snapshots and the HTTP layer.
//!
//! The text is written by hand rather than through the `prometheus` crate: that crate cannot
//! reproduce prometheus_client's output (`_created` families, Go-style floats, `_total` naming
//! of counters), and the metric set is small and fixed, so a registry would add nothing.

mod engine_state;
mod histogram;
mod legacy;
mod render;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_legacy;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use engine::stats::{EngineStats, FinishedRequestStats, StepStats};
use engine_state::{EngineState, MonotonicCounter};
use histogram::{Histogram, HTTP_HIGHR_BUCKETS, HTTP_LOWR_BUCKETS};
pub use render::CONTENT_TYPE;
use render::{CounterSeries, Exposition, HistogramSeries};

/// vLLM labels every engine metric with its data-parallel rank; vllmd runs one engine.
const ENGINE_INDEX: &str = "0";

/// vLLM creates these `request_success` series up front, so a dashboard sees zeros, not gaps.
const FINISH_REASONS: [&str; 3] = ["stop", "length", "abort"];

/// vLLM keeps these handlers out of the HTTP metrics. The instrumentator treats them as regex
/// searches, so they match as substrings (`/load` also hides `/v1/load_lora_adapter`).
const HTTP_EXCLUDED: [&str; 6] = [
    "/metrics",
    "/health",
    "/load",
    "/ping",
    "/version",
    "/server_info",
];

/// Methods kept as they are; anything else becomes `OTHER`, because the method is chosen by the
/// client and each distinct value would be a new series.
const HTTP_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// Beyond this many HTTP series new handlers fold into `none`: a caller passing raw paths
/// instead of route templates must not grow the scrape without bound.
const MAX_HTTP_SERIES: usize = 512;

/// The labels of `vllm:cache_config_info` (vLLM's `CacheConfig` fields, printed as Python would).
#[derive(Debug, Clone)]
pub struct CacheConfigInfo {
    pub block_size: usize,
    pub num_gpu_blocks: usize,
    pub num_gpu_blocks_override: Option<usize>,
    pub gpu_memory_utilization: f64,
    pub enable_prefix_caching: bool,
    pub prefix_caching_hash_algo: String,
    pub cache_dtype: String,
    /// GiB.
    pub swap_space: f64,
    pub cpu_offload_gb: f64,
    pub sliding_window: Option<usize>,
    /// More `(label, value)` pairs; names that are not valid label names are dropped.
    pub extra: Vec<(String, String)>,
}

impl Default for CacheConfigInfo {
    /// vLLM's defaults.
    fn default() -> Self {
        CacheConfigInfo {
            block_size: 16,
            num_gpu_blocks: 0,
            num_gpu_blocks_override: None,
            gpu_memory_utilization: 0.9,
            enable_prefix_caching: true,
            prefix_caching_hash_algo: "sha256".into(),
            cache_dtype: "auto".into(),
            swap_space: 4.0,
            cpu_offload_gb: 0.0,
            sliding_window: None,
            extra: Vec::new(),
        }
    }
}

impl CacheConfigInfo {
    fn labels(&self) -> Vec<(String, String)> {
        let py_bool = |b: bool| if b { "True" } else { "False" }.to_string();
        let py_opt = |o: Option<usize>| o.map_or_else(|| "None".to_string(), |v| v.to_string());
        let mut out: Vec<(String, String)> = vec![
            ("block_size".into(), self.block_size.to_string()),
            ("cache_dtype".into(), self.cache_dtype.clone()),
            ("calculate_kv_scales".into(), py_bool(false)),
            (
                "cpu_offload_gb".into(),
                render::python_repr(self.cpu_offload_gb),
            ),
            (
                "enable_prefix_caching".into(),
                py_bool(self.enable_prefix_caching),
            ),
            (
                "gpu_memory_utilization".into(),
                render::python_repr(self.gpu_memory_utilization),
            ),
            ("is_attention_free".into(), py_bool(false)),
            ("num_cpu_blocks".into(), "None".into()),
            ("num_gpu_blocks".into(), self.num_gpu_blocks.to_string()),
            (
                "num_gpu_blocks_override".into(),
                py_opt(self.num_gpu_blocks_override),
            ),
            (
                "prefix_caching_hash_algo".into(),
                self.prefix_caching_hash_algo.clone(),
            ),
            ("sliding_window".into(), py_opt(self.sliding_window)),
            ("swap_space".into(), render::python_repr(self.swap_space)),
        ];
        for (k, v) in &self.extra {
            let taken = out.iter().any(|(name, _)| name == k) || k == "model_name" || k == "engine";
            if render::is_valid_label_name(k) && !taken {
                out.push((k.clone(), v.clone()));
            }
        }
        out
    }
}

/// Latencies the engine measured token by token since the previous poll: what vLLM observes
/// each iteration. With them the TTFT and inter-token histograms are exact and current; without
/// them they are derived from finished requests (see [`Metrics::observe_engine`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenLatencies<'a> {
    /// Arrival to first token, one per request that produced its first token.
    pub time_to_first_token: &'a [f64],
    /// Gap between two consecutive output tokens of one request, one per decoded token.
    pub inter_token: &'a [f64],
}

#[derive(Debug, Clone)]
struct HttpState {
    /// `(method, status group, handler)` → (count, created).
    requests: BTreeMap<(String, String, String), (u64, f64)>,
    /// `(method, handler)` → (latency, created).
    durations: BTreeMap<(String, String), (Histogram, f64)>,
    highr: Histogram,
}

/// Everything `/metrics` shows. Shared by reference between the engine poller, the HTTP
/// middleware and the `/metrics` handler; each side has its own lock so they do not wait on
/// each other, and rendering formats a copy outside the lock.
#[derive(Debug)]
pub struct Metrics {
    model_name: String,
    /// Unix seconds; the `_created` value of every engine series (all exist from the start).
    created: f64,
    cache_labels: Vec<(String, String)>,
    engine: Mutex<EngineState>,
    http: Mutex<HttpState>,
    /// `--show-hidden-metrics-for-version`: render the deprecated metrics too.
    show_hidden: bool,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A panic elsewhere while holding the lock leaves plain numbers behind, still worth serving.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Metrics {
    /// `max_model_len` sets the top of the token-count histograms (vLLM's 1-2-5 layout).
    pub fn new(model_name: &str, max_model_len: usize, cache_info: CacheConfigInfo) -> Self {
        Metrics {
            model_name: model_name.to_string(),
            created: unix_now(),
            cache_labels: cache_info.labels(),
            engine: Mutex::new(EngineState::new(max_model_len)),
            http: Mutex::new(HttpState {
                requests: BTreeMap::new(),
                durations: BTreeMap::new(),
                highr: Histogram::new(HTTP_HIGHR_BUCKETS),
            }),
            show_hidden: false,
        }
    }

    /// With `true`, `/metrics` also shows the reference's deprecated metrics
    /// (`--show-hidden-metrics-for-version`).
    pub fn with_hidden_metrics(mut self, show: bool) -> Self {
        self.show_hidden = show;
        self
    }

    /// A fresh engine snapshot and the requests finished since the previous one. The TTFT and
    /// inter-token histograms are derived from the finished requests' first/last token times.
    pub fn observe_engine(&self, stats: &EngineStats, finished: &[FinishedRequestStats]) {
        let mut e = lock(&self.engine);
        e.follow_snapshot(stats);
        for r in finished {
            e.observe_finished(r, true);
        }
    }

    /// Like [`Self::observe_engine`], with per-token latencies measured by the engine, which
    /// then replace the derived ones. Use one of the two consistently.
    pub fn observe_engine_with_latencies(
        &self,
        stats: &EngineStats,
        finished: &[FinishedRequestStats],
        latencies: TokenLatencies<'_>,
    ) {
        let mut e = lock(&self.engine);
        e.follow_snapshot(stats);
        e.observe_token_latencies(&latencies);
        for r in finished {
            e.observe_finished(r, false);
        }
    }

    /// One engine step: `vllm:iteration_tokens_total` (prompt plus generated tokens, as vLLM
    /// counts them). Idle steps are not observed.
    pub fn observe_step(&self, step: &StepStats) {
        let tokens = step.num_prompt_tokens + step.num_generation_tokens;
        if tokens > 0 {
            lock(&self.engine).iteration_tokens.observe(tokens as f64);
        }
    }

    /// `n` and `max_tokens` of an accepted request; `max_tokens` only when the client set it.
    pub fn observe_request_params(&self, n: usize, max_tokens: Option<usize>) {
        let mut e = lock(&self.engine);
        e.params_n.observe(n as f64);
        if let Some(m) = max_tokens {
            e.params_max_tokens.observe(m as f64);
        }
    }

    /// One finished HTTP request. `route` is the matched route template (`/v1/chat/completions`),
    /// empty when no route matched; it is reported as `none` then, as the instrumentator does.
    pub fn observe_http(&self, method: &str, route: &str, status: u16, seconds: f64) {
        if HTTP_EXCLUDED.iter().any(|p| route.contains(p)) {
            return;
        }
        let method = HTTP_METHODS
            .iter()
            .find(|m| m.eq_ignore_ascii_case(method))
            .copied()
            .unwrap_or("OTHER");
        let status = format!("{}xx", status / 100);
        let seconds = if seconds.is_finite() {
            seconds.max(0.0)
        } else {
            0.0
        };
        let mut h = lock(&self.http);
        let mut handler = if route.is_empty() { "none" } else { route };
        let known = h
            .durations
            .contains_key(&(method.to_string(), handler.to_string()));
        if !known && h.requests.len() + h.durations.len() >= MAX_HTTP_SERIES {
            handler = "none";
        }
        let now = unix_now();
        h.requests
            .entry((method.to_string(), status, handler.to_string()))
            .or_insert((0, now))
            .0 += 1;
        h.durations
            .entry((method.to_string(), handler.to_string()))
            .or_insert_with(|| (Histogram::new(HTTP_LOWR_BUCKETS), now))
            .0
            .observe(seconds);
        h.highr.observe(seconds);
    }

    /// The text exposition (format 0.0.4; serve it with [`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let e = lock(&self.engine).clone();
        let h = lock(&self.http).clone();
        let base = vec![
            ("engine", ENGINE_INDEX),
            ("model_name", self.model_name.as_str()),
        ];
        let created = self.created;
        let one = |c: &MonotonicCounter| {
            [CounterSeries {
                labels: base.clone(),
                value: c.total as f64,
                created,
            }]
        };
        let mut x = Exposition::new();

        x.gauge(
            "vllm:num_requests_running",
            "Number of requests in model execution batches.",
            &[(base.clone(), e.running as f64)],
        );
        x.gauge(
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
            &[(base.clone(), e.waiting as f64)],
        );
        x.gauge(
            "vllm:kv_cache_usage_perc",
            "KV-cache usage. 1 means 100 percent usage.",
            &[(base.clone(), e.kv_cache_usage)],
        );
        x.counter(
            "vllm:prefix_cache_queries",
            "Prefix cache queries, in terms of number of queried tokens.",
            &one(&e.prefix_cache_queries),
        );
        x.counter(
            "vllm:prefix_cache_hits",
            "Prefix cache hits, in terms of number of cached tokens.",
            &one(&e.prefix_cache_hits),
        );
        x.counter(
            "vllm:num_preemptions",
            "Cumulative number of preemption from the engine.",
            &one(&e.preemptions),
        );
        x.counter(
            "vllm:prompt_tokens",
            "Number of prefill tokens processed.",
            &one(&e.prompt_tokens),
        );
        x.counter(
            "vllm:generation_tokens",
            "Number of generation tokens processed.",
            &one(&e.generation_tokens),
        );
        let success: Vec<CounterSeries<'_>> = e
            .success
            .iter()
            .map(|(reason, c)| {
                let mut labels = base.clone();
                labels.push(("finished_reason", reason.as_str()));
                CounterSeries {
                    labels,
                    value: c.total as f64,
                    created,
                }
            })
            .collect();
        x.counter(
            "vllm:request_success",
            "Count of successfully processed requests.",
            &success,
        );
        for (name, help, histogram) in e.histograms() {
            x.histogram(
                name,
                help,
                &[HistogramSeries {
                    labels: base.clone(),
                    histogram,
                    created,
                }],
            );
        }
        let mut info: Vec<(&str, &str)> = self
            .cache_labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        info.extend(base.iter().copied());
        x.gauge(
            "vllm:cache_config_info",
            "Information of the LLMEngine CacheConfig",
            &[(info, 1.0)],
        );
        legacy::render_seed_names(&mut x, &e, &base, created);
        if self.show_hidden {
            legacy::render_hidden(&mut x, &e, &base, created);
        }

        let requests: Vec<CounterSeries<'_>> = h
            .requests
            .iter()
            .map(|((method, status, handler), &(n, created))| CounterSeries {
                labels: vec![
                    ("handler", handler.as_str()),
                    ("method", method.as_str()),
                    ("status", status.as_str()),
                ],
                value: n as f64,
                created,
            })
            .collect();
        x.counter(
            "http_requests",
            "Total number of requests by method, status and handler.",
            &requests,
        );
        x.histogram(
            "http_request_duration_highr_seconds",
            "Latency with many buckets but no API specific labels. Made for more accurate percentile calculations. ",
            &[HistogramSeries { labels: Vec::new(), histogram: &h.highr, created }],
        );
        let durations: Vec<HistogramSeries<'_>> = h
            .durations
            .iter()
            .map(
                |((method, handler), (histogram, created))| HistogramSeries {
                    labels: vec![("handler", handler.as_str()), ("method", method.as_str())],
                    histogram,
                    created: *created,
                },
            )
            .collect();
        x.histogram(
            "http_request_duration_seconds",
            "Latency with only few buckets by handler. Made to be only used if aggregation by handler is important. ",
            &durations,
        );
        x.finish()
    }
}
