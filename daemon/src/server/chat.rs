//! `POST /v1/chat/completions`: render the chat template, then generate as a completion.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::request::GrammarRequest;
use engine::sampling::SampledToken;
use engine::tokenizer::ChatTemplate;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::completions::{prompt_logprobs_json, usage};
use super::content_format::{self, ContentFormat};
use super::error::ApiError;
use super::generate::{collect, stop_reason_json, submit, ChoiceResult};
use super::protocol::{
    ChatChoice, ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, ChatDelta,
    ChatLogprobEntry, ChatLogprobs, ChatMessage, ChatStreamChoice, TopLogprob,
};
use super::request_fields::{self, Endpoint};
use super::state::{body_bytes, finite_logprob, parse_body, random_id, unix_now, AppState};
use super::stream::{receiver_stream, sse_response};
use super::structured;
use super::tools::{self, StreamShaper, ToolChoice, ToolMode};

const ROLES: &[&str] = &["system", "developer", "user", "assistant", "tool"];

/// Checks the messages and shapes their content for the template: one string (text parts
/// joined by newlines, as vLLM joins them) or, for templates that iterate over parts, the list
/// of text parts, a plain string becoming a one-part list.
pub(super) fn normalise_messages(
    messages: &[Value],
    format: ContentFormat,
) -> Result<Vec<Value>, ApiError> {
    if messages.is_empty() {
        return Err(ApiError::bad_param(
            "messages",
            "messages must not be empty",
        ));
    }
    let text_part = |t: &str| json!({"type": "text", "text": t});
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
            if let Some(calls) = out.get_mut("tool_calls").and_then(Value::as_array_mut) {
                arguments_as_objects(i, calls)?;
            }
            let texts: Vec<String> = match obj.get("content") {
                // An assistant turn that only calls tools has no content: templates concatenate
                // it, so it becomes "" (or no parts), as vLLM passes it.
                None | Some(Value::Null) => {
                    let empty = match format {
                        ContentFormat::OpenAi => Value::Array(Vec::new()),
                        ContentFormat::String => Value::String(String::new()),
                    };
                    out.insert("content".into(), empty);
                    return Ok(Value::Object(out));
                }
                Some(Value::String(s)) => vec![s.clone()],
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
                    texts
                }
                Some(_) => return Err(ApiError::bad_param("messages", format!("messages[{i}].content must be a string or a list of parts"))),
            };
            let content = match format {
                ContentFormat::String => Value::String(texts.join("\n")),
                ContentFormat::OpenAi => Value::Array(texts.iter().map(|t| text_part(t)).collect()),
            };
            out.insert("content".into(), content);
            Ok(Value::Object(out))
        })
        .collect()
}

/// Tool-call arguments arrive as JSON text (OpenAI's shape) but chat templates expect objects
/// (transformers' convention): parse them, an absent or empty one becoming `{}`, as vLLM does.
fn arguments_as_objects(i: usize, calls: &mut [Value]) -> Result<(), ApiError> {
    for call in calls {
        let Some(f) = call.get_mut("function").and_then(Value::as_object_mut) else {
            continue;
        };
        let parsed = match f.get("arguments") {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(Value::String(s)) if s.trim().is_empty() => Value::Object(Default::default()),
            Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| {
                ApiError::bad_param(
                    "messages",
                    format!("messages[{i}]: tool call arguments are not valid JSON: {e}"),
                )
            })?,
            Some(other) => other.clone(),
        };
        f.insert("arguments".into(), parsed);
    }
    Ok(())
}

/// The text of a normalised message, whichever shape its content has.
fn message_text(m: &Value) -> String {
    match m.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The template a request uses (its own `chat_template`, else the server's) and the content
/// format that goes with it.
fn pick_template<'a>(
    state: &'a AppState,
    req_template: Option<&str>,
    owned: &'a mut Option<ChatTemplate>,
) -> Result<(&'a ChatTemplate, ContentFormat), ApiError> {
    match req_template {
        Some(src) => {
            let t = ChatTemplate::new(
                src,
                state.tokenizer.bos_token(),
                state.tokenizer.eos_token(),
            )
            .map_err(|e| ApiError::bad_param("chat_template", e.to_string()))?;
            let format =
                content_format::resolve(&state.opts.chat_template_content_format, Some(src));
            Ok((owned.insert(t), format))
        }
        None => {
            let t = state.chat_template.as_ref().ok_or_else(|| {
                ApiError::bad_request(
                    "the model has no chat template; pass --chat-template or use /v1/completions",
                )
            })?;
            Ok((t, state.content_format))
        }
    }
}

/// Renders `messages` (as the request gave them) with the chosen template.
pub(super) fn render_messages(
    state: &AppState,
    req_template: Option<&str>,
    raw_messages: &[Value],
    add_generation_prompt: bool,
    extra: &serde_json::Map<String, Value>,
) -> Result<(String, Vec<Value>), ApiError> {
    let mut owned = None;
    let (template, format) = pick_template(state, req_template, &mut owned)?;
    let messages = normalise_messages(raw_messages, format)?;
    let text = template
        .render(&messages, add_generation_prompt, extra)
        .map_err(|e| ApiError::bad_param("messages", e.to_string()))?;
    Ok((text, messages))
}

fn render_prompt(
    state: &AppState,
    req: &ChatCompletionRequest,
) -> Result<(String, Vec<Value>), ApiError> {
    let continue_final = req.continue_final_message.unwrap_or(false);
    let add_generation_prompt = req.add_generation_prompt.unwrap_or(!continue_final);
    if continue_final && add_generation_prompt {
        return Err(ApiError::bad_param(
            "continue_final_message",
            "continue_final_message and add_generation_prompt cannot both be true",
        ));
    }
    let mut extra = req.chat_template_kwargs.clone().unwrap_or_default();
    // `--exclude-tools-when-tool-choice-none`: the tools stay out of the prompt when the request
    // says the model must not call any.
    let no_tools = state.opts.exclude_tools_when_tool_choice_none
        && matches!(&req.tool_choice, Some(ToolChoice::Mode(m)) if m == "none");
    if let Some(t) = req.tools.as_ref().filter(|_| !no_tools) {
        extra.insert("tools".into(), t.clone());
    }
    if let Some(d) = &req.documents {
        extra.insert("documents".into(), d.clone());
    }
    let (mut text, messages) = render_messages(
        state,
        req.chat_template.as_deref(),
        &req.messages,
        add_generation_prompt,
        &extra,
    )?;
    if continue_final {
        // Keep the final message open: cut everything the template wrote after its content.
        let last = messages.last().map(message_text).unwrap_or_default();
        if let Some(pos) = text.rfind(&last) {
            text.truncate(pos + last.len());
        }
    }
    Ok((text, messages))
}

fn chat_logprobs(state: &AppState, tokens: &[SampledToken], as_ids: bool) -> ChatLogprobs {
    let entry = |id: u32, lp: f32| {
        let token = state.token_text(id, as_ids);
        TopLogprob {
            bytes: token.as_bytes().to_vec(),
            token,
            logprob: finite_logprob(lp),
        }
    };
    ChatLogprobs {
        content: tokens
            .iter()
            .map(|t| {
                let e = entry(t.token, t.logprob);
                ChatLogprobEntry {
                    token: e.token,
                    logprob: e.logprob,
                    bytes: e.bytes,
                    top_logprobs: t
                        .top_logprobs
                        .iter()
                        .map(|(id, v)| entry(*id, *v))
                        .collect(),
                }
            })
            .collect(),
    }
}

/// The request's constraint: its structured-output fields, or what `required` and named tools
/// need (the two together are refused), compiled for the engine.
async fn constraint_for(
    state: &AppState,
    req: &ChatCompletionRequest,
    mode: &ToolMode,
    tool_list: &[tools::ChatTool],
) -> Result<Option<GrammarRequest>, ApiError> {
    let asked = req.common.structured.constraint(&state.opts.grammar)?;
    let for_tools = mode.constraint(tool_list, req.parallel_tool_calls.unwrap_or(true));
    let (spec, opts) = match (asked, for_tools) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_param(
                "tool_choice",
                "a required or named tool_choice cannot be combined with structured outputs",
            ))
        }
        (Some(c), None) => c,
        (None, Some(t)) => (t, state.opts.grammar.clone()),
        (None, None) => return Ok(None),
    };
    let grammar = structured::compile(state, spec, opts).await?;
    Ok(Some(GrammarRequest {
        grammar,
        gate: state.reasoning_gate,
    }))
}

pub async fn create_chat_completion(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let _load = state.load_guard();
    let body = body_bytes(body)?;
    let (raw, req): (Value, ChatCompletionRequest) = parse_body(&body)?;
    state.check_model(req.common.model.as_deref())?;
    state.require_generate()?;
    request_fields::check(
        raw.as_object().unwrap_or(&serde_json::Map::new()),
        Endpoint::Chat,
    )?;
    let top = if req.logprobs.unwrap_or(false) {
        Some(req.top_logprobs.unwrap_or(0))
    } else {
        None
    };
    if req.top_logprobs.is_some() && top.is_none() {
        return Err(ApiError::bad_param(
            "top_logprobs",
            "top_logprobs requires logprobs to be true",
        ));
    }
    let params = state.sampling_params(&raw, top)?;
    let tool_list = req
        .typed_tools()
        .map_err(|e| ApiError::bad_param("tools", format!("tools: {e}")))?;
    let mode = ToolMode::resolve(
        &tool_list,
        req.tool_choice.as_ref(),
        state.opts.auto_tool_parser(),
    )?;
    let grammar = constraint_for(&state, &req, &mode, &tool_list).await?;
    let reasoning = state.opts.reasoning_parser;
    let include_reasoning = req.include_reasoning.unwrap_or(true);
    let (prompt_text, messages) = render_prompt(&state, &req)?;
    let prompt = state
        .tokenizer
        .encode(&prompt_text, req.common.add_special_tokens.unwrap_or(false))
        .map_err(|e| ApiError::bad_param("messages", e.to_string()))?;
    state
        .metrics
        .observe_request_params(params.n, params.max_tokens);
    let as_ids = req.common.return_tokens_as_token_ids.unwrap_or(false);
    let role = state.opts.response_role.clone();
    // `echo` repeats the final message when it is the assistant's own, unfinished turn.
    let echo_text = match (req.common.echo.unwrap_or(false), messages.last()) {
        (true, Some(m)) if m.get("role").and_then(Value::as_str) == Some(role.as_str()) => {
            message_text(m)
        }
        _ => String::new(),
    };
    let n = params.n.max(1);
    let id = req
        .common
        .request_id
        .clone()
        .map(|r| format!("chatcmpl-{r}"))
        .unwrap_or_else(|| random_id("chatcmpl"));
    state.log_request(&id, &prompt_text, &prompt, &params);
    let stream = submit(
        &state.engine,
        vec![prompt],
        &params,
        req.common.priority.unwrap_or(0),
        grammar.as_ref(),
    )
    .await?;
    let created = unix_now();
    let model = state.model_name().to_string();

    if req.common.stream.unwrap_or(false) {
        let (include_usage, continuous) = req
            .common
            .usage_flags(state.opts.enable_force_include_usage);
        let (tx, rx) = mpsc::unbounded_channel::<Result<Event, Infallible>>();
        let st = state.clone();
        tokio::spawn(async move {
            let _load = st.load_guard();
            let mut stream = stream;
            let mut results: Vec<ChoiceResult> = (0..stream.num_choices)
                .map(|_| ChoiceResult::default())
                .collect();
            let mut shapers: Vec<StreamShaper> = (0..stream.num_choices)
                .map(|_| StreamShaper::new(mode.clone(), reasoning, &tool_list))
                .collect();
            let chunk = |choices: Vec<ChatStreamChoice>, usage| ChatCompletionChunk {
                id: id.clone(),
                object: "chat.completion.chunk",
                created,
                model: model.clone(),
                choices,
                usage,
            };
            let send = |c: ChatCompletionChunk| {
                tx.send(Ok(
                    Event::default().data(serde_json::to_string(&c).unwrap_or_default())
                ))
                .is_ok()
            };
            // The role comes first, in a chunk of its own, for every choice.
            for i in 0..stream.num_choices {
                let first = ChatStreamChoice {
                    index: i,
                    delta: ChatDelta {
                        role: Some(role.clone()),
                        content: Some(echo_text.clone()),
                        ..Default::default()
                    },
                    logprobs: None,
                    finish_reason: None,
                    stop_reason: None,
                };
                if !send(chunk(vec![first], None)) {
                    return;
                }
            }
            while let Some(ev) = stream.next().await {
                let (i, o) = (ev.index, ev.output);
                let lp = (!o.new_logprobs.is_empty())
                    .then(|| chat_logprobs(&st, &o.new_logprobs, as_ids));
                let mut finish = o.finished.map(|f| f.as_str());
                let stop_reason = stop_reason_json(&o.stop_reason);
                let Some(shaper) = shapers.get_mut(i) else {
                    continue;
                };
                let mut parts = shaper.push(&o.new_text);
                if finish.is_some() {
                    let last = shaper.finish();
                    parts.content.push_str(&last.content);
                    parts.reasoning.push_str(&last.reasoning);
                    parts.tool_calls.extend(last.tool_calls);
                    finish = mode.finish_reason(shaper.tools_called, finish);
                }
                if !include_reasoning {
                    parts.reasoning.clear();
                }
                let quiet = parts.reasoning.is_empty() && parts.tool_calls.is_empty();
                let delta = ChatDelta {
                    role: None,
                    content: (!parts.content.is_empty() || (finish.is_none() && quiet))
                        .then_some(parts.content),
                    reasoning_content: (!parts.reasoning.is_empty()).then_some(parts.reasoning),
                    tool_calls: (!parts.tool_calls.is_empty()).then_some(parts.tool_calls),
                };
                results[i].absorb(o);
                let u = continuous.then(|| usage(&st, &results, n));
                if !send(chunk(
                    vec![ChatStreamChoice {
                        index: i,
                        delta,
                        logprobs: lp,
                        finish_reason: finish,
                        stop_reason,
                    }],
                    u,
                )) {
                    return; // client gone: dropping `stream` aborts the rest
                }
            }
            if super::stream::ended_without_finish(&results, &tx) {
                return;
            }
            st.log_output(
                &id,
                &results.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(),
            );
            if include_usage {
                send(chunk(Vec::new(), Some(usage(&st, &results, n))));
            }
            let _ = tx.send(Ok(Event::default().data("[DONE]")));
        });
        return Ok(sse_response(Sse::new(receiver_stream(rx))));
    }

    let results = collect(stream).await?;
    state.log_output(
        &id,
        &results.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(),
    );
    let prompt_logprobs = results
        .first()
        .and_then(|r| prompt_logprobs_json(&state, r, as_ids));
    let choices = results
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let shaped = tools::shape(&r.text, &mode, reasoning, &tool_list);
            let finish_reason = mode.finish_reason(
                !shaped.tool_calls.is_empty(),
                r.finish_reason.map(|f| f.as_str()),
            );
            ChatChoice {
                index: i,
                message: ChatMessage {
                    role: role.clone(),
                    content: shaped.content.map(|c| format!("{echo_text}{c}")),
                    reasoning_content: shaped.reasoning.filter(|_| include_reasoning),
                    tool_calls: shaped.tool_calls,
                },
                logprobs: top.map(|_| chat_logprobs(&state, &r.logprobs, as_ids)),
                finish_reason,
                stop_reason: stop_reason_json(&r.stop_reason),
            }
        })
        .collect();
    let resp = ChatCompletionResponse {
        id,
        object: "chat.completion",
        created,
        model,
        choices,
        usage: usage(&state, &results, n),
        prompt_logprobs,
    };
    Ok(Json(resp).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_parts_flatten_and_bad_messages_are_400() {
        let s = ContentFormat::String;
        let m = normalise_messages(&[json!({"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]})], s).unwrap();
        assert_eq!(m[0]["content"], "a\nb");
        assert_eq!(
            normalise_messages(&[], s).unwrap_err().param.as_deref(),
            Some("messages")
        );
        assert!(normalise_messages(&[json!({"role": "robot", "content": "x"})], s).is_err());
        assert!(normalise_messages(
            &[json!({"role": "user", "content": [{"type": "image_url"}]})],
            s
        )
        .is_err());
        assert!(normalise_messages(&[json!("hi")], s).is_err());
    }

    #[test]
    fn openai_format_keeps_parts_and_wraps_strings() {
        let o = ContentFormat::OpenAi;
        let m = normalise_messages(&[json!({"role": "system", "content": "sys"}), json!({"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]})], o).unwrap();
        assert_eq!(m[0]["content"], json!([{"type": "text", "text": "sys"}]));
        assert_eq!(
            m[1]["content"],
            json!([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}])
        );
        assert_eq!(message_text(&m[1]), "a\nb");
        assert!(normalise_messages(
            &[json!({"role": "user", "content": [{"type": "image_url"}]})],
            o
        )
        .is_err());
    }
}
