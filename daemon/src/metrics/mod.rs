//! The Prometheus `/metrics` of `vllmd`: vLLM v1's metric families, names, labels, bucket layouts
//! and text layout, fed from engine snapshots and the HTTP layer.
//!
//! The text is written by hand rather than through the `prometheus` crate: that crate cannot
//! reproduce prometheus_client's output (`_created` families, Go-style floats, `_total` naming
//! of counters), and the metric set is small and fixed, so a registry would add nothing.

mod histogram;
mod legacy;
mod render;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use engine::stats::{EngineStats, FinishedRequestStats, StepStats};

use histogram::{
    buckets_1_2_5, Histogram, HTTP_HIGHR_BUCKETS, HTTP_LOWR_BUCKETS, ITERATION_TOKENS_BUCKETS,
    PARAMS_N_BUCKETS, REQUEST_LATENCY_BUCKETS, TOKEN_LATENCY_BUCKETS, TTFT_BUCKETS,
};
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

/// A counter fed with cumulative engine snapshots that never goes down, even when the source
/// restarts from zero.
#[derive(Debug, Clone, Copy, Default)]
struct MonotonicCounter {
    total: u64,
    last_seen: u64,
}

impl MonotonicCounter {
    fn follow(&mut self, snapshot: u64) {
        // A smaller snapshot means the engine restarted: everything it reports is new.
        let delta = snapshot.checked_sub(self.last_seen).unwrap_or(snapshot);
        self.total = self.total.saturating_add(delta);
        self.last_seen = snapshot;
    }
}

#[derive(Debug, Clone)]
struct EngineState {
    running: usize,
    waiting: usize,
    kv_cache_usage: f64,
    prefix_cache_queries: MonotonicCounter,
    prefix_cache_hits: MonotonicCounter,
    preemptions: MonotonicCounter,
    prompt_tokens: MonotonicCounter,
    generation_tokens: MonotonicCounter,
    /// Per finish reason, in first-seen order (vLLM's reasons first).
    success: Vec<(String, MonotonicCounter)>,
    request_prompt_tokens: Histogram,
    request_generation_tokens: Histogram,
    iteration_tokens: Histogram,
    params_n: Histogram,
    params_max_tokens: Histogram,
    time_to_first_token: Histogram,
    inter_token_latency: Histogram,
    time_per_output_token: Histogram,
    request_time_per_output_token: Histogram,
    e2e_latency: Histogram,
    queue_time: Histogram,
    inference_time: Histogram,
    prefill_time: Histogram,
    decode_time: Histogram,
    prefill_kv_computed: Histogram,
    /// Each finished request's `max_tokens` (the reference's `vllm:request_max_num_generation_tokens`).
    max_num_generation_tokens: Histogram,
}

fn seconds_between(later: Option<Instant>, earlier: Option<Instant>) -> Option<f64> {
    Some(later?.saturating_duration_since(earlier?).as_secs_f64())
}

impl EngineState {
    fn new(max_model_len: usize) -> Self {
        let tokens = buckets_1_2_5(max_model_len);
        EngineState {
            running: 0,
            waiting: 0,
            kv_cache_usage: 0.0,
            prefix_cache_queries: MonotonicCounter::default(),
            prefix_cache_hits: MonotonicCounter::default(),
            preemptions: MonotonicCounter::default(),
            prompt_tokens: MonotonicCounter::default(),
            generation_tokens: MonotonicCounter::default(),
            success: FINISH_REASONS
                .iter()
                .map(|r| (r.to_string(), MonotonicCounter::default()))
                .collect(),
            request_prompt_tokens: Histogram::new(&tokens),
            request_generation_tokens: Histogram::new(&tokens),
            iteration_tokens: Histogram::new(ITERATION_TOKENS_BUCKETS),
            params_n: Histogram::new(PARAMS_N_BUCKETS),
            params_max_tokens: Histogram::new(&tokens),
            time_to_first_token: Histogram::new(TTFT_BUCKETS),
            inter_token_latency: Histogram::new(TOKEN_LATENCY_BUCKETS),
            time_per_output_token: Histogram::new(TOKEN_LATENCY_BUCKETS),
            request_time_per_output_token: Histogram::new(TOKEN_LATENCY_BUCKETS),
            e2e_latency: Histogram::new(REQUEST_LATENCY_BUCKETS),
            queue_time: Histogram::new(REQUEST_LATENCY_BUCKETS),
            inference_time: Histogram::new(REQUEST_LATENCY_BUCKETS),
            prefill_time: Histogram::new(REQUEST_LATENCY_BUCKETS),
            decode_time: Histogram::new(REQUEST_LATENCY_BUCKETS),
            prefill_kv_computed: Histogram::new(&tokens),
            max_num_generation_tokens: Histogram::new(&tokens),
        }
    }

    fn follow_snapshot(&mut self, stats: &EngineStats) {
        self.running = stats.num_running;
        self.waiting = stats.num_waiting;
        self.kv_cache_usage = if stats.kv_cache_usage.is_finite() {
            stats.kv_cache_usage.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.prefix_cache_queries.follow(stats.prefix_cache_queries);
        self.prefix_cache_hits.follow(stats.prefix_cache_hits);
        self.preemptions.follow(stats.num_preemptions);
        self.prompt_tokens.follow(stats.num_prompt_tokens);
        self.generation_tokens.follow(stats.num_generation_tokens);
        // The engine's per-reason totals, not the drained list, drive the counter: the list is
        // bounded and drops records when nobody polls, the totals do not.
        for (reason, &n) in &stats.finished_by_reason {
            match self.success.iter_mut().find(|(r, _)| r == reason) {
                Some((_, c)) => c.follow(n),
                None => {
                    let mut c = MonotonicCounter::default();
                    c.follow(n);
                    self.success.push((reason.to_string(), c));
                }
            }
        }
        for (reason, c) in &mut self.success {
            if !stats.finished_by_reason.contains_key(reason.as_str()) {
                c.follow(0);
            }
        }
    }

    fn observe_token_latencies(&mut self, lat: &TokenLatencies<'_>) {
        for &v in lat.time_to_first_token {
            self.time_to_first_token.observe(v);
        }
        for &v in lat.inter_token {
            // vLLM feeds the older name with the same observations.
            self.inter_token_latency.observe(v);
            self.time_per_output_token.observe(v);
        }
    }

    fn observe_finished(&mut self, r: &FinishedRequestStats, derive_token_latencies: bool) {
        let t = &r.times;
        let arrival = Some(t.arrival);
        let decode = seconds_between(t.last_token, t.first_token);
        if derive_token_latencies {
            if let Some(v) = seconds_between(t.first_token, arrival) {
                self.time_to_first_token.observe(v);
            }
            // Without per-token timestamps, each of the request's n-1 gaps is taken as the mean
            // gap: `_count` and `_sum` stay exact, only the spread within a request is lost.
            if let (Some(d), Some(gaps)) = (
                decode,
                r.num_output_tokens.checked_sub(1).filter(|&g| g > 0),
            ) {
                let mean = d / gaps as f64;
                self.inter_token_latency.observe_n(mean, gaps as u64);
                self.time_per_output_token.observe_n(mean, gaps as u64);
            }
        }
        // Phases the request never reached (aborted while queued, say) are not observed,
        // rather than observed as nonsense intervals.
        if let Some(v) = seconds_between(t.finished.or(t.last_token), arrival) {
            self.e2e_latency.observe(v);
        }
        if let Some(v) = seconds_between(t.first_scheduled, arrival) {
            self.queue_time.observe(v);
        }
        if let Some(v) = seconds_between(t.first_token, t.first_scheduled) {
            self.prefill_time.observe(v);
        }
        if let Some(v) = decode {
            self.decode_time.observe(v);
        }
        if let Some(v) = seconds_between(t.last_token, t.first_scheduled) {
            self.inference_time.observe(v);
        }
        // vLLM observes 0 for requests with fewer than two tokens.
        let mean_tpot = match (decode, r.num_output_tokens) {
            (Some(d), n) if n > 1 => d / (n - 1) as f64,
            _ => 0.0,
        };
        self.request_time_per_output_token.observe(mean_tpot);
        self.request_prompt_tokens
            .observe(r.num_prompt_tokens as f64);
        self.request_generation_tokens
            .observe(r.num_output_tokens as f64);
        self.prefill_kv_computed
            .observe(r.num_prompt_tokens.saturating_sub(r.num_cached_tokens) as f64);
        self.max_num_generation_tokens.observe(r.max_tokens as f64);
    }

    /// `(name, help, histogram)` in vLLM's registration order.
    fn histograms(&self) -> [(&'static str, &'static str, &Histogram); 15] {
        [
            (
                "vllm:request_prompt_tokens",
                "Number of prefill tokens processed.",
                &self.request_prompt_tokens,
            ),
            (
                "vllm:request_generation_tokens",
                "Number of generation tokens processed.",
                &self.request_generation_tokens,
            ),
            (
                "vllm:iteration_tokens_total",
                "Histogram of number of tokens per engine_step.",
                &self.iteration_tokens,
            ),
            (
                "vllm:request_params_n",
                "Histogram of the n request parameter.",
                &self.params_n,
            ),
            (
                "vllm:request_params_max_tokens",
                "Histogram of the max_tokens request parameter.",
                &self.params_max_tokens,
            ),
            (
                "vllm:time_to_first_token_seconds",
                "Histogram of time to first token in seconds.",
                &self.time_to_first_token,
            ),
            (
                "vllm:inter_token_latency_seconds",
                "Histogram of inter-token latency in seconds.",
                &self.inter_token_latency,
            ),
            (
                "vllm:time_per_output_token_seconds",
                "Histogram of time per output token in seconds.",
                &self.time_per_output_token,
            ),
            (
                "vllm:request_time_per_output_token_seconds",
                "Histogram of time_per_output_token_seconds per request.",
                &self.request_time_per_output_token,
            ),
            (
                "vllm:e2e_request_latency_seconds",
                "Histogram of e2e request latency in seconds.",
                &self.e2e_latency,
            ),
            (
                "vllm:request_queue_time_seconds",
                "Histogram of time spent in WAITING phase for request.",
                &self.queue_time,
            ),
            (
                "vllm:request_inference_time_seconds",
                "Histogram of time spent in RUNNING phase for request.",
                &self.inference_time,
            ),
            (
                "vllm:request_prefill_time_seconds",
                "Histogram of time spent in PREFILL phase for request.",
                &self.prefill_time,
            ),
            (
                "vllm:request_decode_time_seconds",
                "Histogram of time spent in DECODE phase for request.",
                &self.decode_time,
            ),
            (
                "vllm:request_prefill_kv_computed_tokens",
                "Histogram of new KV tokens computed during prefill (excluding cached tokens).",
                &self.prefill_kv_computed,
            ),
        ]
    }
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
