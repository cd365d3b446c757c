//! The engine side of `/metrics`: counters that follow the engine's cumulative snapshots and the
//! per-request histograms, in vLLM's registration order.

use std::time::Instant;

use engine::stats::{EngineStats, FinishedRequestStats};

use super::histogram::{
    buckets_1_2_5, Histogram, ITERATION_TOKENS_BUCKETS, PARAMS_N_BUCKETS, REQUEST_LATENCY_BUCKETS,
    TOKEN_LATENCY_BUCKETS, TTFT_BUCKETS,
};
use super::{TokenLatencies, FINISH_REASONS};

/// A counter fed with cumulative engine snapshots that never goes down, even when the source
/// restarts from zero.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct MonotonicCounter {
    pub(super) total: u64,
    pub(super) last_seen: u64,
}

impl MonotonicCounter {
    pub(super) fn follow(&mut self, snapshot: u64) {
        // A smaller snapshot means the engine restarted: everything it reports is new.
        let delta = snapshot.checked_sub(self.last_seen).unwrap_or(snapshot);
        self.total = self.total.saturating_add(delta);
        self.last_seen = snapshot;
    }
}

#[derive(Debug, Clone)]
pub(super) struct EngineState {
    pub(super) running: usize,
    pub(super) waiting: usize,
    pub(super) kv_cache_usage: f64,
    pub(super) prefix_cache_queries: MonotonicCounter,
    pub(super) prefix_cache_hits: MonotonicCounter,
    pub(super) preemptions: MonotonicCounter,
    pub(super) prompt_tokens: MonotonicCounter,
    pub(super) generation_tokens: MonotonicCounter,
    /// Per finish reason, in first-seen order (vLLM's reasons first).
    pub(super) success: Vec<(String, MonotonicCounter)>,
    pub(super) request_prompt_tokens: Histogram,
    pub(super) request_generation_tokens: Histogram,
    pub(super) iteration_tokens: Histogram,
    pub(super) params_n: Histogram,
    pub(super) params_max_tokens: Histogram,
    pub(super) time_to_first_token: Histogram,
    pub(super) inter_token_latency: Histogram,
    pub(super) time_per_output_token: Histogram,
    pub(super) request_time_per_output_token: Histogram,
    e2e_latency: Histogram,
    pub(super) queue_time: Histogram,
    pub(super) inference_time: Histogram,
    pub(super) prefill_time: Histogram,
    pub(super) decode_time: Histogram,
    pub(super) prefill_kv_computed: Histogram,
    /// Each finished request's `max_tokens` (the reference's `vllm:request_max_num_generation_tokens`).
    pub(super) max_num_generation_tokens: Histogram,
}

fn seconds_between(later: Option<Instant>, earlier: Option<Instant>) -> Option<f64> {
    Some(later?.saturating_duration_since(earlier?).as_secs_f64())
}

impl EngineState {
    pub(super) fn new(max_model_len: usize) -> Self {
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

    pub(super) fn follow_snapshot(&mut self, stats: &EngineStats) {
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

    pub(super) fn observe_token_latencies(&mut self, lat: &TokenLatencies<'_>) {
        for &v in lat.time_to_first_token {
            self.time_to_first_token.observe(v);
        }
        for &v in lat.inter_token {
            // vLLM feeds the older name with the same observations.
            self.inter_token_latency.observe(v);
            self.time_per_output_token.observe(v);
        }
    }

    pub(super) fn observe_finished(
        &mut self,
        r: &FinishedRequestStats,
        derive_token_latencies: bool,
    ) {
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
    pub(super) fn histograms(&self) -> [(&'static str, &'static str, &Histogram); 15] {
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
