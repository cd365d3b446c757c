//! Scheduler settings (the `SchedulerConfig` group of `vllm serve`).

/// `--scheduling-policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SchedulingPolicy {
    /// First come, first served.
    #[default]
    Fcfs,
    /// Lowest `priority` value first, then arrival; the highest value is preempted first.
    Priority,
}

impl std::str::FromStr for SchedulingPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fcfs" => Ok(SchedulingPolicy::Fcfs),
            "priority" => Ok(SchedulingPolicy::Priority),
            other => Err(format!(
                "unknown scheduling policy `{other}` (choices: fcfs, priority)"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Token budget of one step (`--max-num-batched-tokens`).
    pub max_num_batched_tokens: usize,
    /// Most sequences in one step (`--max-num-seqs`).
    pub max_num_seqs: usize,
    pub max_model_len: usize,
    /// Split long prompts over several steps (`--enable-chunked-prefill`).
    pub enable_chunked_prefill: bool,
    /// Most prompts being prefilled in pieces at once (`--max-num-partial-prefills`).
    pub max_num_partial_prefills: usize,
    /// Most of those that are "long" (`--max-long-partial-prefills`).
    pub max_long_partial_prefills: usize,
    /// A prompt longer than this is "long", and a step computes at most this many of its tokens
    /// (`--long-prefill-token-threshold`, 0 = off).
    pub long_prefill_token_threshold: usize,
    pub policy: SchedulingPolicy,
}

impl SchedulerConfig {
    /// vLLM's defaults for a given context length.
    pub fn new(max_model_len: usize) -> Self {
        SchedulerConfig {
            max_num_batched_tokens: 2048,
            max_num_seqs: 256,
            max_model_len,
            enable_chunked_prefill: true,
            max_num_partial_prefills: 1,
            max_long_partial_prefills: 1,
            long_prefill_token_threshold: 0,
            policy: SchedulingPolicy::Fcfs,
        }
    }

    /// Settings that cannot work together, as a message naming the flags.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_num_batched_tokens == 0 || self.max_num_seqs == 0 {
            return Err("--max-num-batched-tokens and --max-num-seqs must be positive".into());
        }
        if !self.enable_chunked_prefill && self.max_num_batched_tokens < self.max_model_len {
            return Err(format!(
                "--max-num-batched-tokens ({}) is smaller than --max-model-len ({}) with chunked prefill disabled: long prompts could never be scheduled; raise it or enable chunked prefill",
                self.max_num_batched_tokens, self.max_model_len
            ));
        }
        if self.max_num_partial_prefills == 0 || self.max_long_partial_prefills == 0 {
            return Err(
                "--max-num-partial-prefills and --max-long-partial-prefills must be positive"
                    .into(),
            );
        }
        if self.max_long_partial_prefills > self.max_num_partial_prefills {
            return Err(
                "--max-long-partial-prefills cannot exceed --max-num-partial-prefills".into(),
            );
        }
        Ok(())
    }
}
