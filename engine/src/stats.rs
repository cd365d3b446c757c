//! Engine statistics, the raw material of the server's Prometheus metrics.

use std::collections::BTreeMap;

use crate::request::{FinishReason, RequestTimes};

/// Counters (monotonic since start) and gauges (current values).
#[derive(Debug, Clone, Default)]
pub struct EngineStats {
    pub num_blocks: usize,
    pub num_running: usize,
    pub num_waiting: usize,
    /// Fraction of KV blocks in use, 0..=1.
    pub kv_cache_usage: f64,
    pub num_preemptions: u64,
    /// Prompt tokens looked up in / found in the prefix cache.
    pub prefix_cache_queries: u64,
    pub prefix_cache_hits: u64,
    /// Prompt tokens of requests that produced their first token (whole prompts, cached
    /// tokens included, counted once: vLLM's `vllm:prompt_tokens`).
    pub num_prompt_tokens: u64,
    pub num_generation_tokens: u64,
    pub num_steps: u64,
    pub finished_by_reason: BTreeMap<&'static str, u64>,
}

/// What one step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepStats {
    pub num_seqs: usize,
    pub num_scheduled_tokens: usize,
    pub num_prompt_tokens: usize,
    pub num_generation_tokens: usize,
    pub num_preempted: usize,
}

/// A finished request's numbers, for latency histograms.
#[derive(Debug, Clone, Copy)]
pub struct FinishedRequestStats {
    pub reason: FinishReason,
    pub times: RequestTimes,
    pub num_prompt_tokens: usize,
    pub num_output_tokens: usize,
    pub num_cached_tokens: usize,
    pub max_tokens: usize,
}

/// Per-token latencies measured since the last drain, in seconds (what vLLM observes every
/// iteration for its TTFT and inter-token histograms).
#[derive(Debug, Clone, Default)]
pub struct TokenLatencyLog {
    /// Arrival → first token, one per request that produced its first token.
    pub time_to_first_token: Vec<f64>,
    /// Gap between consecutive output tokens of a request, one per later token.
    pub inter_token: Vec<f64>,
    /// Each non-idle step's numbers.
    pub steps: Vec<StepStats>,
}

impl TokenLatencyLog {
    /// Most entries kept when nobody drains the log.
    const CAP: usize = 1 << 20;

    pub(crate) fn push_ttft(&mut self, v: f64) {
        if self.time_to_first_token.len() < Self::CAP {
            self.time_to_first_token.push(v);
        }
    }

    pub(crate) fn push_step(&mut self, s: StepStats) {
        if self.steps.len() < Self::CAP {
            self.steps.push(s);
        }
    }

    pub(crate) fn push_itl(&mut self, v: f64) {
        if self.inter_token.len() < Self::CAP {
            self.inter_token.push(v);
        }
    }
}
