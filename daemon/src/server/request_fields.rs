//! The fields of vLLM's `CompletionRequest` and `ChatCompletionRequest`, each with its fate here:
//! read, refused with a 400 in the OpenAI error format (features vllm-rs does not have yet: a
//! request relying on them must not get a silently different answer), or ignored as vLLM
//! ignores them. Fields vLLM does not know either are ignored with a debug log line.

use serde_json::{Map, Value};

use super::error::ApiError;

/// vLLM's (and OpenAI's) `max_tokens` of `/v1/completions` when the request sets none.
pub const COMPLETION_DEFAULT_MAX_TOKENS: usize = 16;

/// Which endpoint a body was sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Completions,
    Chat,
}

/// Read by both endpoints (the sampling fields go to the engine's parser).
const COMMON: &[&str] = &[
    "model",
    "n",
    "best_of",
    "stream",
    "stream_options",
    "stop",
    "seed",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
    "logit_bias",
    "logprobs",
    "max_tokens",
    "min_tokens",
    "stop_token_ids",
    "bad_words",
    "include_stop_str_in_output",
    "ignore_eos",
    "skip_special_tokens",
    "spaces_between_special_tokens",
    "truncate_prompt_tokens",
    "allowed_token_ids",
    "prompt_logprobs",
    "add_special_tokens",
    "echo",
    "priority",
    "request_id",
    "return_tokens_as_token_ids",
    "detokenize",
    "response_format",
    "structured_outputs",
    "guided_json",
    "guided_regex",
    "guided_choice",
    "guided_grammar",
    "guided_whitespace_pattern",
    "guided_decoding_backend",
];

const COMPLETIONS: &[&str] = &["prompt", "suffix"];

const CHAT: &[&str] = &[
    "messages",
    "top_logprobs",
    "max_completion_tokens",
    "add_generation_prompt",
    "continue_final_message",
    "chat_template",
    "chat_template_kwargs",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "include_reasoning",
    "documents",
];

/// Accepted without effect, as in vLLM: `user` is for OpenAI's abuse monitoring,
/// `length_penalty` only applies to beam search, `reasoning_effort` only to models whose
/// template reads it (passed through `chat_template_kwargs` instead).
const IGNORED: &[&str] = &[
    "user",
    "length_penalty",
    "reasoning_effort",
    "return_token_ids",
];

/// Refused whenever present and not `null` (or `false` for switches).
const REFUSED: &[(&str, &str)] = &[
    ("use_beam_search", "beam search is not supported yet"),
    (
        "prompt_embeds",
        "prompt embeddings are not supported yet (--enable-prompt-embeds)",
    ),
    ("structural_tag", "structural tags are not supported yet"),
    (
        "logits_processors",
        "custom logits processors are not supported yet",
    ),
    (
        "mm_processor_kwargs",
        "multimodal input is not supported yet",
    ),
    ("cache_salt", "prefix-cache salts are not supported yet"),
    (
        "kv_transfer_params",
        "KV-cache transfer is not supported yet",
    ),
    ("vllm_xargs", "vllm_xargs are not supported yet"),
];

fn is_set(v: &Value) -> bool {
    !matches!(v, Value::Null | Value::Bool(false))
}

/// Refuses the fields vllm-rs cannot honour; logs (at debug level) the ones nobody knows.
pub fn check(body: &Map<String, Value>, endpoint: Endpoint) -> Result<(), ApiError> {
    for (field, why) in REFUSED {
        if body.get(*field).is_some_and(is_set) {
            return Err(ApiError::bad_param(field, format!("{field}: {why}")));
        }
    }
    check_best_of(body)?;
    let own = if endpoint == Endpoint::Chat {
        CHAT
    } else {
        COMPLETIONS
    };
    let unknown: Vec<&str> = body
        .keys()
        .map(String::as_str)
        .filter(|k| !COMMON.contains(k) && !own.contains(k) && !IGNORED.contains(k))
        .collect();
    if !unknown.is_empty() {
        tracing::debug!(
            "The following fields were present in the request but ignored: {}",
            unknown.join(", ")
        );
    }
    Ok(())
}

/// `best_of` above `n` would need the engine to rank candidates, which it does not yet; `best_of`
/// below `n` is left to the engine's own check (vLLM's message).
fn check_best_of(body: &Map<String, Value>) -> Result<(), ApiError> {
    let n = body.get("n").and_then(Value::as_u64).unwrap_or(1);
    match body.get("best_of").and_then(Value::as_u64) {
        Some(b) if b > n => Err(ApiError::bad_param(
            "best_of",
            format!("best_of ({b}) greater than n ({n}) is not supported yet"),
        )),
        _ => Ok(()),
    }
}

/// `body` with vLLM's `/v1/completions` default `max_tokens` filled in when the request has none
/// (an explicit `null` keeps "up to the context length"), capped by the model's own default.
pub fn with_completion_max_tokens(body: &Value, model_default: Option<usize>) -> Value {
    let mut body = body.clone();
    if let Some(obj) = body.as_object_mut() {
        if !obj.contains_key("max_tokens") {
            let m = model_default.map_or(COMPLETION_DEFAULT_MAX_TOKENS, |d| {
                d.min(COMPLETION_DEFAULT_MAX_TOKENS)
            });
            obj.insert("max_tokens".into(), Value::from(m));
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn refused_fields_name_themselves() {
        for (v, param) in [
            (json!({"use_beam_search": true}), "use_beam_search"),
            (json!({"prompt_embeds": "AAAA"}), "prompt_embeds"),
            (json!({"best_of": 3, "n": 2}), "best_of"),
            (json!({"structural_tag": "{}"}), "structural_tag"),
        ] {
            let e = check(&body(v.clone()), Endpoint::Completions)
                .err()
                .map(|e| e.param);
            assert_eq!(e, Some(Some(param.to_string())), "{v}");
        }
    }

    #[test]
    fn harmless_values_pass() {
        for v in [
            json!({"use_beam_search": false, "prompt_embeds": null, "best_of": 2, "n": 2}),
            json!({"response_format": {"type": "text"}, "user": "u", "length_penalty": 1.0, "no_such_field": 1}),
        ] {
            assert!(
                check(&body(v.clone()), Endpoint::Completions).is_ok(),
                "{v}"
            );
        }
        assert!(check(
            &body(json!({"tools": [{"type": "function"}], "tool_choice": "none"})),
            Endpoint::Chat
        )
        .is_ok());
        assert!(check(
            &body(json!({"response_format": {"type": "json_object"}, "guided_regex": "a"})),
            Endpoint::Completions
        )
        .is_ok());
    }

    #[test]
    fn completions_default_to_16_tokens_unless_told() {
        assert_eq!(
            with_completion_max_tokens(&json!({"prompt": "x"}), None)["max_tokens"],
            16
        );
        assert_eq!(
            with_completion_max_tokens(&json!({"prompt": "x"}), Some(8))["max_tokens"],
            8
        );
        assert_eq!(
            with_completion_max_tokens(&json!({"max_tokens": null}), None)["max_tokens"],
            Value::Null
        );
        assert_eq!(
            with_completion_max_tokens(&json!({"max_tokens": 100}), None)["max_tokens"],
            100
        );
    }
}
