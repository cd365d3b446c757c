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
    "documents",
];

/// Accepted without effect, as in vLLM: `user` is for OpenAI's abuse monitoring,
/// `length_penalty` only applies to beam search, the reasoning and parallel-tool switches only
/// to parsers vllm-rs does not have (and which `vllmd` refuses to enable).
const IGNORED: &[&str] = &[
    "user",
    "length_penalty",
    "parallel_tool_calls",
    "reasoning_effort",
    "include_reasoning",
    "return_token_ids",
];

/// Refused whenever present and not `null` (or `false` for switches).
const REFUSED: &[(&str, &str)] = &[
    ("use_beam_search", "beam search is not supported yet"),
    (
        "prompt_embeds",
        "prompt embeddings are not supported yet (--enable-prompt-embeds)",
    ),
    ("guided_json", "guided decoding is not supported yet"),
    ("guided_regex", "guided decoding is not supported yet"),
    ("guided_choice", "guided decoding is not supported yet"),
    ("guided_grammar", "guided decoding is not supported yet"),
    ("structural_tag", "guided decoding is not supported yet"),
    (
        "guided_decoding_backend",
        "guided decoding is not supported yet",
    ),
    (
        "guided_whitespace_pattern",
        "guided decoding is not supported yet",
    ),
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
    if let Some(rf) = body.get("response_format").filter(|v| !v.is_null()) {
        let kind = rf.get("type").and_then(Value::as_str).unwrap_or("");
        if kind != "text" {
            return Err(ApiError::bad_param(
                "response_format",
                format!("response_format {kind:?}: structured output is not supported yet"),
            ));
        }
    }
    check_best_of(body)?;
    if endpoint == Endpoint::Chat {
        check_tool_choice(body)?;
    }
    let own = if endpoint == Endpoint::Chat {
        CHAT
    } else {
        COMPLETIONS
    };
    let unknown: Vec<&str> = body
        .keys()
        .map(String::as_str)
        .filter(|k| {
            !COMMON.contains(k)
                && !own.contains(k)
                && !IGNORED.contains(k)
                && *k != "response_format"
        })
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

/// Without a tool-call parser (`--tool-call-parser` is refused) the model's tool calls cannot be
/// parsed: `auto` gets vLLM's own 400, `required` and named tools need guided decoding.
fn check_tool_choice(body: &Map<String, Value>) -> Result<(), ApiError> {
    let has_tools = body
        .get("tools")
        .is_some_and(|t| t.as_array().is_some_and(|a| !a.is_empty()));
    match body.get("tool_choice") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if s == "none" => Ok(()),
        Some(Value::String(s)) if s == "auto" && !has_tools => Ok(()),
        Some(Value::String(s)) if s == "auto" => {
            Err(ApiError::bad_param("tool_choice", "\"auto\" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set"))
        }
        Some(other) => Err(ApiError::bad_param("tool_choice", format!("tool_choice {other} is not supported yet"))),
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
            (
                json!({"response_format": {"type": "json_object"}}),
                "response_format",
            ),
            (json!({"guided_json": {"type": "object"}}), "guided_json"),
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
            &body(json!({"tools": [{"type": "function"}], "tool_choice": "auto"})),
            Endpoint::Chat
        )
        .is_err());
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
