//! Per-request caps that protect the engine from one request's cost, beyond vLLM's own checks
//! (`n`, `logprobs` against `--max-logprobs`, `max_tokens` and the prompt against
//! `--max-model-len` are checked elsewhere, as vLLM does). vLLM sets no bound on these: the caps
//! are vllm-rs's, far above what any client sends, each answered with a 400 naming the field.

use engine::sampling::SamplingParams;

use super::error::ApiError;

/// Stop strings per request: each is searched for in every step's new text.
pub const MAX_STOP_STRINGS: usize = 128;
/// Characters per stop string: streaming holds back that much text while a match is possible.
pub const MAX_STOP_STRING_CHARS: usize = 1024;
/// `logit_bias` entries (token ids): each is applied to every step's logits.
pub const MAX_LOGIT_BIAS_ENTRIES: usize = 1024;
/// `stop_token_ids` and `bad_words` entries.
pub const MAX_TOKEN_LIST: usize = 1024;

/// Checks the caps above on parsed sampling parameters.
pub fn check(params: &SamplingParams) -> Result<(), ApiError> {
    if params.stop.len() > MAX_STOP_STRINGS {
        return Err(ApiError::bad_param(
            "stop",
            format!(
                "stop may hold at most {MAX_STOP_STRINGS} strings, got {}",
                params.stop.len()
            ),
        ));
    }
    if let Some(long) = params
        .stop
        .iter()
        .map(|s| s.chars().count())
        .find(|&n| n > MAX_STOP_STRING_CHARS)
    {
        return Err(ApiError::bad_param(
            "stop",
            format!("each stop string may be at most {MAX_STOP_STRING_CHARS} characters, got one of {long}"),
        ));
    }
    if params.logit_bias.len() > MAX_LOGIT_BIAS_ENTRIES {
        return Err(ApiError::bad_param(
            "logit_bias",
            format!(
                "logit_bias may hold at most {MAX_LOGIT_BIAS_ENTRIES} entries, got {}",
                params.logit_bias.len()
            ),
        ));
    }
    for (field, len) in [
        ("stop_token_ids", params.stop_token_ids.len()),
        ("bad_words", params.bad_words.len()),
    ] {
        if len > MAX_TOKEN_LIST {
            return Err(ApiError::bad_param(
                field,
                format!("{field} may hold at most {MAX_TOKEN_LIST} entries, got {len}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(p: &SamplingParams) -> Option<String> {
        check(p).err().and_then(|e| e.param)
    }

    #[test]
    fn caps_are_inclusive_and_name_the_field() {
        let mut p = SamplingParams {
            stop: vec!["x".repeat(MAX_STOP_STRING_CHARS); MAX_STOP_STRINGS],
            ..Default::default()
        };
        assert_eq!(param(&p), None);
        p.stop.push("y".into());
        assert_eq!(param(&p).as_deref(), Some("stop"));
        p.stop = vec!["é".repeat(MAX_STOP_STRING_CHARS + 1)];
        assert_eq!(param(&p).as_deref(), Some("stop"));
        p.stop.clear();
        p.logit_bias = (0..=MAX_LOGIT_BIAS_ENTRIES as u32)
            .map(|t| (t, 1.0))
            .collect();
        assert_eq!(param(&p).as_deref(), Some("logit_bias"));
        p.logit_bias.clear();
        p.stop_token_ids = vec![1; MAX_TOKEN_LIST + 1];
        assert_eq!(param(&p).as_deref(), Some("stop_token_ids"));
    }
}
