//! `POST /v1/chat/completions`: render the chat template, then generate as a completion.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::sampling::SampledToken;
use engine::tokenizer::ChatTemplate;
use serde_json::Value;
#[cfg(test)]
use serde_json::json;
use tokio::sync::mpsc;

use super::completions::{prompt_logprobs_json, usage};
use super::error::ApiError;
use super::generate::{collect, stop_reason_json, submit, ChoiceResult};
use super::protocol::{ChatChoice, ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, ChatDelta, ChatLogprobEntry, ChatLogprobs, ChatMessage, ChatStreamChoice, TopLogprob};
use super::state::{body_bytes, finite_logprob, parse_body, random_id, unix_now, AppState};
use super::stream::{receiver_stream, sse_response};

const ROLES: &[&str] = &["system", "developer", "user", "assistant", "tool"];

/// Checks the messages and flattens content parts (`[{"type": "text", "text": ...}]`) into
/// strings, which is what the templates of the models we serve expect.
fn normalise_messages(messages: &[Value]) -> Result<Vec<Value>, ApiError> {
    if messages.is_empty() {
        return Err(ApiError::bad_param("messages", "messages must not be empty"));
    }
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let Some(obj) = m.as_object() else {
                return Err(ApiError::bad_param("messages", format!("messages[{i}] must be an object")));
            };
            let role = obj.get("role").and_then(Value::as_str).ok_or_else(|| ApiError::bad_param("messages", format!("messages[{i}].role is required")))?;
            if !ROLES.contains(&role) {
                return Err(ApiError::bad_param("messages", format!("messages[{i}].role `{role}` is not one of {ROLES:?}")));
            }
            let mut out = obj.clone();
            match obj.get("content") {
                None | Some(Value::Null) | Some(Value::String(_)) => {}
                Some(Value::Array(parts)) => {
                    let mut texts = Vec::new();
                    for p in parts {
                        match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str)) {
                            (Some("text"), Some(t)) => texts.push(t.to_string()),
                            (kind, _) => {
                                return Err(ApiError::bad_param("messages", format!("messages[{i}]: content part type {kind:?} is not supported (text only)")));
                            }
                        }
                    }
                    out.insert("content".into(), Value::String(texts.join("\n")));
                }
                Some(_) => return Err(ApiError::bad_param("messages", format!("messages[{i}].content must be a string or a list of parts"))),
            }
            Ok(Value::Object(out))
        })
        .collect()
}

fn render_prompt(state: &AppState, req: &ChatCompletionRequest, messages: &[Value]) -> Result<String, ApiError> {
    let owned;
    let template = match &req.chat_template {
        Some(src) => {
            owned = ChatTemplate::new(src, state.tokenizer.bos_token(), state.tokenizer.eos_token()).map_err(|e| ApiError::bad_param("chat_template", e.to_string()))?;
            &owned
        }
        None => state.chat_template.as_ref().ok_or_else(|| ApiError::bad_request("the model has no chat template; pass --chat-template or use /v1/completions"))?,
    };
    let continue_final = req.continue_final_message.unwrap_or(false);
    let add_generation_prompt = req.add_generation_prompt.unwrap_or(!continue_final);
    if continue_final && add_generation_prompt {
        return Err(ApiError::bad_param("continue_final_message", "continue_final_message and add_generation_prompt cannot both be true"));
    }
    let mut extra = req.chat_template_kwargs.clone().unwrap_or_default();
    if let Some(t) = &req.tools {
        extra.insert("tools".into(), t.clone());
    }
    if let Some(d) = &req.documents {
        extra.insert("documents".into(), d.clone());
    }
    let mut text = template.render(messages, add_generation_prompt, &extra).map_err(|e| ApiError::bad_param("messages", e.to_string()))?;
    if continue_final {
        // Keep the final message open: cut everything the template wrote after its content.
        let last = messages.last().and_then(|m| m.get("content")).and_then(Value::as_str).unwrap_or("");
        if let Some(pos) = text.rfind(last) {
            text.truncate(pos + last.len());
        }
    }
    Ok(text)
}

fn chat_logprobs(state: &AppState, tokens: &[SampledToken], as_ids: bool) -> ChatLogprobs {
    let entry = |id: u32, lp: f32| {
        let token = state.token_text(id, as_ids);
        TopLogprob { bytes: token.as_bytes().to_vec(), token, logprob: finite_logprob(lp) }
    };
    ChatLogprobs {
        content: tokens
            .iter()
            .map(|t| {
                let e = entry(t.token, t.logprob);
                ChatLogprobEntry { token: e.token, logprob: e.logprob, bytes: e.bytes, top_logprobs: t.top_logprobs.iter().map(|(id, v)| entry(*id, *v)).collect() }
            })
            .collect(),
    }
}

pub async fn create_chat_completion(State(state): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let _load = state.load_guard();
    let body = body_bytes(body)?;
    let (raw, req): (Value, ChatCompletionRequest) = parse_body(&body)?;
    state.check_model(req.common.model.as_deref())?;
    let messages = normalise_messages(&req.messages)?;
    let top = if req.logprobs.unwrap_or(false) { Some(req.top_logprobs.unwrap_or(0)) } else { None };
    if req.top_logprobs.is_some() && top.is_none() {
        return Err(ApiError::bad_param("top_logprobs", "top_logprobs requires logprobs to be true"));
    }
    let params = state.sampling_params(&raw, top)?;
    let prompt_text = render_prompt(&state, &req, &messages)?;
    let prompt = state.tokenizer.encode(&prompt_text, req.common.add_special_tokens.unwrap_or(false)).map_err(|e| ApiError::bad_param("messages", e.to_string()))?;
    state.metrics.observe_request_params(params.n, params.max_tokens);
    let as_ids = req.common.return_tokens_as_token_ids.unwrap_or(false);
    let role = state.opts.response_role.clone();
    // `echo` repeats the final message when it is the assistant's own, unfinished turn.
    let echo_text = match (req.common.echo.unwrap_or(false), messages.last()) {
        (true, Some(m)) if m.get("role").and_then(Value::as_str) == Some(role.as_str()) => m.get("content").and_then(Value::as_str).unwrap_or("").to_string(),
        _ => String::new(),
    };
    let n = params.n.max(1);
    let id = req.common.request_id.clone().map(|r| format!("chatcmpl-{r}")).unwrap_or_else(|| random_id("chatcmpl"));
    state.log_request(&id, &prompt_text, &prompt, &params);
    let stream = submit(&state.engine, vec![prompt], &params, req.common.priority.unwrap_or(0)).await?;
    let created = unix_now();
    let model = state.model_name().to_string();

    if req.common.stream.unwrap_or(false) {
        let (include_usage, continuous) = req.common.usage_flags(state.opts.enable_force_include_usage);
        let (tx, rx) = mpsc::unbounded_channel::<Result<Event, Infallible>>();
        let st = state.clone();
        tokio::spawn(async move {
            let _load = st.load_guard();
            let mut stream = stream;
            let mut results: Vec<ChoiceResult> = (0..stream.num_choices).map(|_| ChoiceResult::default()).collect();
            let chunk = |choices: Vec<ChatStreamChoice>, usage| ChatCompletionChunk { id: id.clone(), object: "chat.completion.chunk", created, model: model.clone(), choices, usage };
            let send = |c: ChatCompletionChunk| tx.send(Ok(Event::default().data(serde_json::to_string(&c).unwrap_or_default()))).is_ok();
            // The role comes first, in a chunk of its own, for every choice.
            for i in 0..stream.num_choices {
                let first = ChatStreamChoice { index: i, delta: ChatDelta { role: Some(role.clone()), content: Some(echo_text.clone()) }, logprobs: None, finish_reason: None, stop_reason: None };
                if !send(chunk(vec![first], None)) {
                    return;
                }
            }
            while let Some(ev) = stream.next().await {
                let (i, o) = (ev.index, ev.output);
                let lp = (!o.new_logprobs.is_empty()).then(|| chat_logprobs(&st, &o.new_logprobs, as_ids));
                let finish = o.finished.map(|f| f.as_str());
                let stop_reason = stop_reason_json(&o.stop_reason);
                let delta = ChatDelta { role: None, content: (!o.new_text.is_empty() || finish.is_none()).then(|| o.new_text.clone()) };
                results[i].absorb(o);
                let u = continuous.then(|| usage(&st, &results, n));
                if !send(chunk(vec![ChatStreamChoice { index: i, delta, logprobs: lp, finish_reason: finish, stop_reason }], u)) {
                    return; // client gone: dropping `stream` aborts the rest
                }
            }
            st.log_output(&id, &results.iter().map(|r| r.text.as_str()).collect::<Vec<_>>());
            if include_usage {
                send(chunk(Vec::new(), Some(usage(&st, &results, n))));
            }
            let _ = tx.send(Ok(Event::default().data("[DONE]")));
        });
        return Ok(sse_response(Sse::new(receiver_stream(rx))));
    }

    let results = collect(stream).await?;
    state.log_output(&id, &results.iter().map(|r| r.text.as_str()).collect::<Vec<_>>());
    let prompt_logprobs = results.first().and_then(|r| prompt_logprobs_json(&state, r, as_ids));
    let choices = results
        .iter()
        .enumerate()
        .map(|(i, r)| ChatChoice {
            index: i,
            message: ChatMessage { role: role.clone(), content: format!("{echo_text}{}", r.text) },
            logprobs: top.map(|_| chat_logprobs(&state, &r.logprobs, as_ids)),
            finish_reason: r.finish_reason.map(|f| f.as_str()),
            stop_reason: stop_reason_json(&r.stop_reason),
        })
        .collect();
    let resp = ChatCompletionResponse { id, object: "chat.completion", created, model, choices, usage: usage(&state, &results, n), prompt_logprobs };
    Ok(Json(resp).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_parts_flatten_and_bad_messages_are_400() {
        let m = normalise_messages(&[json!({"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]})]).unwrap();
        assert_eq!(m[0]["content"], "a\nb");
        assert_eq!(normalise_messages(&[]).unwrap_err().param.as_deref(), Some("messages"));
        assert!(normalise_messages(&[json!({"role": "robot", "content": "x"})]).is_err());
        assert!(normalise_messages(&[json!({"role": "user", "content": [{"type": "image_url"}]})]).is_err());
        assert!(normalise_messages(&[json!("hi")]).is_err());
    }
}
