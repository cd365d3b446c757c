//! Per-request sampling parameters: vLLM's `SamplingParams` fields, names and defaults, and the
//! checks vLLM makes on them before a request is admitted.

use std::collections::HashMap;

use serde::{Deserialize, Deserializer, Serialize};

/// Below this temperature a request samples greedily (vLLM's `_SAMPLING_EPS`).
pub const SAMPLING_EPS: f32 = 1e-5;

/// Random sampling never runs colder than this (vLLM's `_MAX_TEMP`): dividing logits by a tiny
/// temperature overflows to inf/NaN, so vLLM raises such temperatures to this value.
pub const MIN_RANDOM_TEMPERATURE: f32 = 1e-2;

/// What a request asks of the sampler and the detokenizer.
///
/// Deserializes from vLLM/OpenAI-style JSON; a missing field keeps the default below. `stop` may
/// be one string or a list, a `null` list is empty, and `seed: -1` means no seed, as in vLLM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    /// Number of output sequences for the request.
    pub n: usize,
    /// Number of candidates to generate, of which the best `n` are returned.
    pub best_of: Option<usize>,
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    pub repetition_penalty: f32,
    pub temperature: f32,
    pub top_p: f32,
    /// `0` or `-1`: no top-k filter.
    pub top_k: i32,
    pub min_p: f32,
    #[serde(deserialize_with = "seed_or_none")]
    pub seed: Option<u64>,
    #[serde(deserialize_with = "string_or_list")]
    pub stop: Vec<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub stop_token_ids: Vec<u32>,
    #[serde(deserialize_with = "null_as_default")]
    pub bad_words: Vec<String>,
    pub include_stop_str_in_output: bool,
    pub ignore_eos: bool,
    /// `None`: up to the model's context length.
    pub max_tokens: Option<usize>,
    pub min_tokens: usize,
    /// Top logprobs to return per generated token; `Some(0)` returns only the sampled token's.
    pub logprobs: Option<usize>,
    pub prompt_logprobs: Option<usize>,
    pub skip_special_tokens: bool,
    pub spaces_between_special_tokens: bool,
    #[serde(deserialize_with = "null_as_default")]
    pub logit_bias: HashMap<u32, f32>,
    pub allowed_token_ids: Option<Vec<u32>>,
    pub truncate_prompt_tokens: Option<usize>,
    pub detokenize: bool,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            n: 1,
            best_of: None,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            repetition_penalty: 1.0,
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            seed: None,
            stop: Vec::new(),
            stop_token_ids: Vec::new(),
            bad_words: Vec::new(),
            include_stop_str_in_output: false,
            ignore_eos: false,
            max_tokens: None,
            min_tokens: 0,
            logprobs: None,
            prompt_logprobs: None,
            skip_special_tokens: true,
            spaces_between_special_tokens: true,
            logit_bias: HashMap::new(),
            allowed_token_ids: None,
            truncate_prompt_tokens: None,
            detokenize: true,
        }
    }
}

/// Facts about the model and the request that the parameter checks need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidationContext {
    /// Rows of the model's logits (token ids must be below this).
    pub vocab_size: usize,
    pub max_model_len: usize,
    /// vLLM's `--max-logprobs` (default 20).
    pub max_logprobs: usize,
    /// Prompt length in tokens, after any `truncate_prompt_tokens` truncation.
    pub prompt_len: usize,
}

impl ValidationContext {
    /// vLLM's default `--max-logprobs`.
    pub const DEFAULT_MAX_LOGPROBS: usize = 20;
}

/// A request whose sampling parameters cannot be served. Each variant names the offending
/// parameter ([`SamplingError::param`]) so the server can report it in the OpenAI error body.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SamplingError {
    #[error("{msg}")]
    InvalidParameter { param: &'static str, msg: String },
    /// Prompt plus requested completion do not fit the model's context.
    #[error("{}", context_message(*max_model_len, *prompt_len, *max_tokens))]
    ContextLengthExceeded {
        max_model_len: usize,
        prompt_len: usize,
        max_tokens: Option<usize>,
    },
}

impl SamplingError {
    /// The request field the error is about.
    pub fn param(&self) -> &'static str {
        match self {
            SamplingError::InvalidParameter { param, .. } => param,
            SamplingError::ContextLengthExceeded {
                max_tokens: Some(_),
                ..
            } => "max_tokens",
            SamplingError::ContextLengthExceeded {
                max_tokens: None, ..
            } => "messages",
        }
    }

    pub(crate) fn invalid(param: &'static str, msg: impl Into<String>) -> Self {
        SamplingError::InvalidParameter {
            param,
            msg: msg.into(),
        }
    }
}

fn bad(param: &'static str, msg: impl Into<String>) -> SamplingError {
    SamplingError::invalid(param, msg)
}

/// vLLM's wording, which clients match on to detect context overflows.
fn context_message(max_model_len: usize, prompt_len: usize, max_tokens: Option<usize>) -> String {
    match max_tokens {
        Some(m) => format!(
            "This model's maximum context length is {max_model_len} tokens. However, you \
             requested {} tokens ({prompt_len} in the messages, {m} in the completion). Please \
             reduce the length of the messages or completion.",
            prompt_len.saturating_add(m)
        ),
        None => format!(
            "This model's maximum context length is {max_model_len} tokens. However, you \
             requested {prompt_len} tokens in the messages. Please reduce the length of the \
             messages."
        ),
    }
}

impl SamplingParams {
    /// Whether the request decodes greedily (argmax) rather than sampling.
    pub fn is_greedy(&self) -> bool {
        self.temperature < SAMPLING_EPS
    }

    /// The top-k filter size, `None` when off.
    pub fn top_k_limit(&self) -> Option<usize> {
        usize::try_from(self.top_k).ok().filter(|&k| k > 0)
    }

    /// The temperature random sampling divides by (see [`MIN_RANDOM_TEMPERATURE`]).
    pub fn effective_temperature(&self) -> f32 {
        self.temperature.max(MIN_RANDOM_TEMPERATURE)
    }

    /// Tokens the request may generate at most: `max_tokens`, else what the context leaves.
    pub fn effective_max_tokens(&self, max_model_len: usize, prompt_len: usize) -> usize {
        let room = max_model_len.saturating_sub(prompt_len);
        self.max_tokens.map_or(room, |m| m.min(room))
    }

    /// The parameters of the `index`-th of `n` parallel samples: `n = 1`, and a seeded request
    /// gets `seed + index` so its samples differ from each other yet stay reproducible (what
    /// vLLM does when it fans a request out).
    pub fn for_child(&self, index: usize) -> SamplingParams {
        let mut child = self.clone();
        child.n = 1;
        child.best_of = None;
        child.seed = self.seed.map(|s| s.wrapping_add(index as u64));
        child
    }

    /// Checks every parameter the way vLLM does before admitting a request.
    pub fn validate(&self, ctx: &ValidationContext) -> Result<(), SamplingError> {
        self.validate_numbers()?;
        self.validate_lists(ctx)?;
        self.validate_lengths(ctx)
    }

    fn validate_numbers(&self) -> Result<(), SamplingError> {
        if self.n < 1 {
            return Err(bad("n", format!("n must be at least 1, got {}.", self.n)));
        }
        if let Some(best_of) = self.best_of {
            if best_of < self.n {
                return Err(bad(
                    "best_of",
                    format!(
                        "best_of must be greater than or equal to n, got n={} and best_of={best_of}.",
                        self.n
                    ),
                ));
            }
        }
        // NaN fails every range test below, so it is rejected along with out-of-range values.
        if !(-2.0..=2.0).contains(&self.presence_penalty) {
            let msg = format!(
                "presence_penalty must be in [-2, 2], got {:?}.",
                self.presence_penalty
            );
            return Err(bad("presence_penalty", msg));
        }
        if !(-2.0..=2.0).contains(&self.frequency_penalty) {
            let msg = format!(
                "frequency_penalty must be in [-2, 2], got {:?}.",
                self.frequency_penalty
            );
            return Err(bad("frequency_penalty", msg));
        }
        if !self.repetition_penalty.is_finite() {
            let msg = format!(
                "repetition_penalty must be a finite number, got {:?}.",
                self.repetition_penalty
            );
            return Err(bad("repetition_penalty", msg));
        }
        if self.repetition_penalty <= 0.0 {
            let msg = format!(
                "repetition_penalty must be greater than zero, got {:?}.",
                self.repetition_penalty
            );
            return Err(bad("repetition_penalty", msg));
        }
        if !self.temperature.is_finite() {
            let msg = format!(
                "temperature must be a finite number, got {:?}.",
                self.temperature
            );
            return Err(bad("temperature", msg));
        }
        if self.temperature < 0.0 {
            let msg = format!(
                "temperature must be non-negative, got {:?}.",
                self.temperature
            );
            return Err(bad("temperature", msg));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(bad(
                "top_p",
                format!("top_p must be in (0, 1], got {:?}.", self.top_p),
            ));
        }
        if self.top_k < -1 {
            let msg = format!(
                "top_k must be 0 (disable), or at least 1, got {}.",
                self.top_k
            );
            return Err(bad("top_k", msg));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return Err(bad(
                "min_p",
                format!("min_p must be in [0, 1], got {:?}.", self.min_p),
            ));
        }
        if let Some(max_tokens) = self.max_tokens {
            if max_tokens < 1 {
                let msg = format!("max_tokens must be at least 1, got {max_tokens}.");
                return Err(bad("max_tokens", msg));
            }
            if self.min_tokens > max_tokens {
                let msg = format!(
                    "min_tokens must be less than or equal to max_tokens={max_tokens}, got {}.",
                    self.min_tokens
                );
                return Err(bad("min_tokens", msg));
            }
        }
        if self.truncate_prompt_tokens == Some(0) {
            let msg = "truncate_prompt_tokens must be an integer >= 1 or -1, got 0";
            return Err(bad("truncate_prompt_tokens", msg));
        }
        // Greedy decoding is deterministic: several samples would all be the same text.
        if self.is_greedy() && self.n > 1 {
            let msg = format!("n must be 1 when using greedy sampling, got {}.", self.n);
            return Err(bad("n", msg));
        }
        Ok(())
    }

    fn validate_lists(&self, ctx: &ValidationContext) -> Result<(), SamplingError> {
        if self.stop.iter().any(String::is_empty) {
            return Err(bad("stop", "stop cannot contain an empty string."));
        }
        if !self.stop.is_empty() && !self.detokenize {
            let msg = "stop strings are only supported when detokenize is True. Set \
                       detokenize=True to use stop.";
            return Err(bad("stop", msg));
        }
        if self.bad_words.iter().any(String::is_empty) {
            let msg = format!(
                "bad_words cannot contain an empty string. Got bad_words={:?}",
                self.bad_words
            );
            return Err(bad("bad_words", msg));
        }
        for (param, n) in [
            ("logprobs", self.logprobs),
            ("prompt_logprobs", self.prompt_logprobs),
        ] {
            if let Some(n) = n.filter(|&n| n > ctx.max_logprobs) {
                let what = if param == "logprobs" {
                    "sample logprobs"
                } else {
                    "prompt logprobs"
                };
                let msg = format!(
                    "Requested {what} of {n}, which is greater than max allowed: {}",
                    ctx.max_logprobs
                );
                return Err(bad(param, msg));
            }
        }
        let out_of_vocab = |ids: &mut dyn Iterator<Item = u32>| -> Vec<u32> {
            ids.filter(|&id| id as usize >= ctx.vocab_size).collect()
        };
        let invalid = out_of_vocab(&mut self.logit_bias.keys().copied());
        if !invalid.is_empty() {
            let msg = format!(
                "token_id(s) {invalid:?} in logit_bias contain out-of-vocab token ids. Vocabulary \
                 size: {}",
                ctx.vocab_size
            );
            return Err(bad("logit_bias", msg));
        }
        if let Some((id, bias)) = self.logit_bias.iter().find(|(_, b)| !b.is_finite()) {
            let msg = format!("logit_bias for token {id} must be a finite number, got {bias:?}");
            return Err(bad("logit_bias", msg));
        }
        let invalid = out_of_vocab(&mut self.stop_token_ids.iter().copied());
        if !invalid.is_empty() {
            let msg = format!(
                "token_id(s) {invalid:?} in stop_token_ids contain out-of-vocab token ids. \
                 Vocabulary size: {}",
                ctx.vocab_size
            );
            return Err(bad("stop_token_ids", msg));
        }
        if let Some(allowed) = &self.allowed_token_ids {
            if allowed.is_empty() {
                return Err(bad(
                    "allowed_token_ids",
                    "allowed_token_ids is not None and empty!",
                ));
            }
            if !out_of_vocab(&mut allowed.iter().copied()).is_empty() {
                return Err(bad(
                    "allowed_token_ids",
                    "allowed_token_ids contains out-of-vocab token id!",
                ));
            }
        }
        Ok(())
    }

    fn validate_lengths(&self, ctx: &ValidationContext) -> Result<(), SamplingError> {
        if ctx.prompt_len == 0 {
            return Err(SamplingError::invalid(
                "prompt",
                "The decoder prompt cannot be empty",
            ));
        }
        if let Some(t) = self
            .truncate_prompt_tokens
            .filter(|&t| t > ctx.max_model_len)
        {
            let msg = format!(
                "truncate_prompt_tokens value ({t}) is greater than max_model_len ({}). Please, \
                 select a smaller truncation size.",
                ctx.max_model_len
            );
            return Err(SamplingError::invalid("truncate_prompt_tokens", msg));
        }
        let overflow = match self.max_tokens {
            Some(m) => ctx.prompt_len.saturating_add(m) > ctx.max_model_len,
            // No completion budget given: the prompt must leave room for at least one token.
            None => ctx.prompt_len >= ctx.max_model_len,
        };
        if overflow {
            return Err(SamplingError::ContextLengthExceeded {
                max_model_len: ctx.max_model_len,
                prompt_len: ctx.prompt_len,
                max_tokens: self.max_tokens,
            });
        }
        Ok(())
    }
}

/// `stop` is a string or a list of strings in the OpenAI API.
fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    })
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// vLLM treats `seed: -1` as "no seed"; other negative seeds are invalid.
fn seed_or_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Seed {
        Unsigned(u64),
        Signed(i64),
    }
    match Option::<Seed>::deserialize(d)? {
        None | Some(Seed::Signed(-1)) => Ok(None),
        Some(Seed::Unsigned(s)) => Ok(Some(s)),
        Some(Seed::Signed(s)) => Err(serde::de::Error::custom(format!(
            "seed must be a non-negative integer or -1, got {s}"
        ))),
    }
}
