//! A request as the engine sees it: token ids in, token ids (and text) out.

use std::time::Instant;

use crate::sampling::{PromptLogprob, SampledToken, SamplingParams};
use crate::structured::{CompiledGrammar, ReasoningGate};

pub type RequestId = u64;

/// Why a request ended (vLLM's `finish_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FinishReason {
    /// EOS, a stop token id or a stop string.
    Stop,
    /// `max_tokens` or the model's context length.
    Length,
    /// Cancelled by the client (or its connection dropped).
    Abort,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Abort => "abort",
        }
    }
}

/// What stopped a request with `FinishReason::Stop` (vLLM's `stop_reason`: `None` for EOS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    Eos,
    TokenId(u32),
    String(String),
}

/// A new request for the engine. Prompts arrive tokenized: the API owns text handling.
#[derive(Debug, Clone)]
pub struct EngineRequest {
    pub prompt_token_ids: Vec<u32>,
    pub params: SamplingParams,
    /// Lower values are served first under `--scheduling-policy priority`.
    pub priority: i32,
    pub arrival: Instant,
    /// A structured-output constraint on the generated tokens.
    pub grammar: Option<GrammarRequest>,
    /// Set on a pooling server: the request is prefilled and pooled, never sampled.
    pub pooling: Option<crate::pooling::PoolingParams>,
}

/// A compiled constraint and, with a reasoning parser, where it starts.
#[derive(Debug, Clone)]
pub struct GrammarRequest {
    pub grammar: CompiledGrammar,
    pub gate: Option<ReasoningGate>,
}

impl EngineRequest {
    pub fn new(prompt_token_ids: Vec<u32>, params: SamplingParams) -> Self {
        EngineRequest {
            prompt_token_ids,
            params,
            priority: 0,
            arrival: Instant::now(),
            grammar: None,
            pooling: None,
        }
    }
}

/// Timestamps of one request, for the latency metrics.
#[derive(Debug, Clone, Copy)]
pub struct RequestTimes {
    pub arrival: Instant,
    pub first_scheduled: Option<Instant>,
    pub first_token: Option<Instant>,
    pub last_token: Option<Instant>,
    pub finished: Option<Instant>,
}

impl RequestTimes {
    pub fn new(arrival: Instant) -> Self {
        RequestTimes {
            arrival,
            first_scheduled: None,
            first_token: None,
            last_token: None,
            finished: None,
        }
    }
}

/// One step's worth of news about a request, streamed to whoever submitted it.
#[derive(Debug, Clone)]
pub struct RequestOutput {
    pub request_id: RequestId,
    pub new_token_ids: Vec<u32>,
    /// Text that may be shown now (never splits a UTF-8 character, holds back possible stop strings).
    pub new_text: String,
    /// One entry per new token when the request asked for logprobs.
    pub new_logprobs: Vec<SampledToken>,
    /// Sent once, with the first output, when the request asked for prompt logprobs.
    pub prompt_logprobs: Option<Vec<Option<PromptLogprob>>>,
    pub finished: Option<FinishReason>,
    pub stop_reason: Option<StopReason>,
    pub num_prompt_tokens: usize,
    /// Prompt tokens served from the prefix cache.
    pub num_cached_tokens: usize,
    pub num_output_tokens: usize,
    /// Filled when the request finishes.
    pub times: Option<RequestTimes>,
    /// A pooling request's result: the embedding, or the classifier's scores.
    pub pooled: Option<Vec<f32>>,
}
