//! `POST /v1/completions`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::sampling::SampledToken;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use super::error::ApiError;
use super::generate::{collect, stop_reason_json, submit, ChoiceResult};
use super::protocol::{
    CompletionChoice, CompletionLogprobs, CompletionRequest, CompletionResponse, Prompt,
    PromptTokensDetails, Usage,
};
use super::request_fields::{self, Endpoint};
use super::state::{body_bytes, finite_logprob, parse_body, random_id, unix_now, AppState};
use super::stream::sse_response;

/// Column-wise logprobs of some tokens, with text offsets starting at `offset`.
pub fn completion_logprobs(
    state: &AppState,
    tokens: &[SampledToken],
    mut offset: usize,
    as_ids: bool,
) -> CompletionLogprobs {
    let mut lp = CompletionLogprobs::default();
    for t in tokens {
        let text = state.token_text(t.token, as_ids);
        lp.text_offset.push(offset);
        offset += text.len();
        lp.tokens.push(text);
        lp.token_logprobs.push(Some(finite_logprob(t.logprob)));
        let mut top = Map::new();
        for (id, v) in &t.top_logprobs {
            top.insert(state.token_text(*id, as_ids), json!(finite_logprob(*v)));
        }
        lp.top_logprobs.push(Some(top));
    }
    lp
}

/// `echo` with `logprobs`, as vLLM returns it: every prompt token (the first has no
/// logprob) with its top alternatives, then the generated ones, the text offsets running on
/// over both (vLLM adds up the token strings' lengths).
fn echo_logprobs(
    state: &AppState,
    prompt: &[u32],
    r: &ChoiceResult,
    as_ids: bool,
) -> CompletionLogprobs {
    let mut lp = CompletionLogprobs::default();
    let entries = r.prompt_logprobs.as_deref().unwrap_or(&[]);
    let mut offset = 0;
    for (j, &id) in prompt.iter().enumerate() {
        let text = state.token_text(id, as_ids);
        lp.text_offset.push(offset);
        offset += text.len();
        lp.tokens.push(text);
        let Some(e) = entries.get(j).and_then(Option::as_ref) else {
            lp.token_logprobs.push(None);
            lp.top_logprobs.push(None);
            continue;
        };
        lp.token_logprobs.push(Some(finite_logprob(e.logprob)));
        let mut top = Map::new();
        for (t, v) in std::iter::once((e.token, e.logprob)).chain(e.top.iter().copied()) {
            top.insert(state.token_text(t, as_ids), json!(finite_logprob(v)));
        }
        lp.top_logprobs.push(Some(top));
    }
    let generated = completion_logprobs(state, &r.logprobs, offset, as_ids);
    lp.text_offset.extend(generated.text_offset);
    lp.tokens.extend(generated.tokens);
    lp.token_logprobs.extend(generated.token_logprobs);
    lp.top_logprobs.extend(generated.top_logprobs);
    lp
}

pub fn prompt_logprobs_json(state: &AppState, r: &ChoiceResult, as_ids: bool) -> Option<Value> {
    let p = r.prompt_logprobs.as_ref()?;
    Some(Value::Array(
        p.iter()
            .map(|e| match e {
                None => Value::Null,
                Some(e) => {
                    let mut m = Map::new();
                    m.insert(e.token.to_string(), json!({"logprob": e.logprob, "rank": e.rank, "decoded_token": state.token_text(e.token, as_ids)}));
                    for (rank, (id, v)) in e.top.iter().enumerate() {
                        m.entry(id.to_string()).or_insert_with(|| json!({"logprob": v, "rank": rank + 1, "decoded_token": state.token_text(*id, as_ids)}));
                    }
                    Value::Object(m)
                }
            })
            .collect(),
    ))
}

fn prompts_to_ids(
    state: &AppState,
    prompt: Prompt,
    add_special: bool,
) -> Result<(Vec<Vec<u32>>, Vec<String>), ApiError> {
    let enc = |t: &str| {
        state
            .tokenizer
            .encode(t, add_special)
            .map_err(|e| ApiError::bad_param("prompt", e.to_string()))
    };
    let dec = |ids: &[u32]| state.tokenizer.decode(ids, false).unwrap_or_default();
    let (ids, texts) = match prompt {
        Prompt::Text(t) => (vec![enc(&t)?], vec![t]),
        Prompt::Texts(ts) => (ts.iter().map(|t| enc(t)).collect::<Result<_, _>>()?, ts),
        Prompt::Tokens(ids) => (vec![ids.clone()], vec![dec(&ids)]),
        Prompt::TokenLists(ls) => (ls.clone(), ls.iter().map(|l| dec(l)).collect()),
    };
    if ids.is_empty() {
        return Err(ApiError::bad_param("prompt", "prompt cannot be empty"));
    }
    let vocab = state.tokenizer.vocab_size().max(1) as u32;
    if let Some(bad) = ids.iter().flatten().find(|t| **t >= vocab) {
        return Err(ApiError::bad_param(
            "prompt",
            format!("token id {bad} is out of vocabulary (size {vocab})"),
        ));
    }
    Ok((ids, texts))
}

pub async fn create_completion(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let _load = state.load_guard();
    let body = body_bytes(body)?;
    let (raw, req): (Value, CompletionRequest) = parse_body(&body)?;
    state.check_model(req.common.model.as_deref())?;
    state.require_generate()?;
    request_fields::check(
        raw.as_object().unwrap_or(&Map::new()),
        Endpoint::Completions,
    )?;
    let raw = request_fields::with_completion_max_tokens(&raw, state.defaults.max_tokens);
    if req.suffix.is_some() {
        return Err(ApiError::bad_param("suffix", "suffix is not supported"));
    }
    let mut params = state.sampling_params(&raw, req.logprobs)?;
    let echo = req.common.echo.unwrap_or(false);
    // vLLM: `echo` with `logprobs` returns the prompt's logprobs too, so it asks for them.
    if echo && params.logprobs.is_some() && params.prompt_logprobs.is_none() {
        params.prompt_logprobs = params.logprobs;
    }
    let grammar = match req.common.structured.constraint(&state.opts.grammar)? {
        Some((spec, opts)) => Some(engine::request::GrammarRequest {
            grammar: super::structured::compile(&state, spec, opts).await?,
            gate: None,
        }),
        None => None,
    };
    let (prompts, prompt_texts) = prompts_to_ids(
        &state,
        req.prompt.clone(),
        req.common.add_special_tokens.unwrap_or(true),
    )?;
    state
        .metrics
        .observe_request_params(params.n, params.max_tokens);
    let echoed_ids = if echo { prompts.clone() } else { Vec::new() };
    let as_ids = req.common.return_tokens_as_token_ids.unwrap_or(false);
    let id = req
        .common
        .request_id
        .clone()
        .map(|r| format!("cmpl-{r}"))
        .unwrap_or_else(|| random_id("cmpl"));
    for (ids, text) in prompts.iter().zip(&prompt_texts) {
        state.log_request(&id, text, ids, &params);
    }
    let stream = submit(
        &state.engine,
        prompts,
        &params,
        req.common.priority.unwrap_or(0),
        grammar.as_ref(),
    )
    .await?;
    let created = unix_now();
    let n = params.n.max(1);

    if req.common.stream.unwrap_or(false) {
        let (include_usage, continuous) = req
            .common
            .usage_flags(state.opts.enable_force_include_usage);
        let (tx, rx) = mpsc::unbounded_channel::<Result<Event, Infallible>>();
        let st = state.clone();
        tokio::spawn(async move {
            let _load = st.load_guard();
            let mut stream = stream;
            let model = st.model_name().to_string();
            let mut results: Vec<ChoiceResult> = (0..stream.num_choices)
                .map(|_| ChoiceResult::default())
                .collect();
            let mut echoed = vec![!echo; stream.num_choices];
            while let Some(ev) = stream.next().await {
                let i = ev.index;
                let o = ev.output;
                let mut text = String::new();
                if !echoed[i] {
                    echoed[i] = true;
                    text.push_str(&prompt_texts[i / n]);
                }
                text.push_str(&o.new_text);
                let lp = (!o.new_logprobs.is_empty()).then(|| {
                    completion_logprobs(&st, &o.new_logprobs, results[i].text.len(), as_ids)
                });
                let finish = o.finished.map(|f| f.as_str());
                let stop_reason = stop_reason_json(&o.stop_reason);
                results[i].absorb(o);
                let mut chunk = json!({
                    "id": id, "object": "text_completion", "created": created, "model": model,
                    "choices": [{"index": i, "text": text, "logprobs": lp, "finish_reason": finish, "stop_reason": stop_reason}],
                });
                if continuous {
                    chunk["usage"] =
                        serde_json::to_value(usage(&st, &results, n)).unwrap_or(Value::Null);
                }
                if tx
                    .send(Ok(Event::default().data(chunk.to_string())))
                    .is_err()
                {
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
                let chunk = json!({"id": id, "object": "text_completion", "created": created, "model": model, "choices": [], "usage": usage(&st, &results, n)});
                let _ = tx.send(Ok(Event::default().data(chunk.to_string())));
            }
            let _ = tx.send(Ok(Event::default().data("[DONE]")));
        });
        return Ok(sse_response(Sse::new(super::stream::receiver_stream(rx))));
    }

    let results = collect(stream).await?;
    state.log_output(
        &id,
        &results.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(),
    );
    let choices = results
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let prefix = if echo {
                prompt_texts[i / n].clone()
            } else {
                String::new()
            };
            CompletionChoice {
                index: i,
                logprobs: params.logprobs.map(|_| {
                    if echo {
                        echo_logprobs(&state, &echoed_ids[i / n], r, as_ids)
                    } else {
                        completion_logprobs(&state, &r.logprobs, prefix.len(), as_ids)
                    }
                }),
                text: prefix + &r.text,
                finish_reason: r.finish_reason.map(|f| f.as_str()),
                stop_reason: stop_reason_json(&r.stop_reason),
                prompt_logprobs: prompt_logprobs_json(&state, r, as_ids),
            }
        })
        .collect();
    let resp = CompletionResponse {
        id,
        object: "text_completion",
        created,
        model: state.model_name().to_string(),
        choices,
        usage: Some(usage(&state, &results, n)),
    };
    Ok(Json(resp).into_response())
}

/// Usage over all choices: each prompt counted once, every choice's completion tokens.
pub fn usage(state: &AppState, results: &[ChoiceResult], n: usize) -> Usage {
    let prompt_tokens: usize = results
        .iter()
        .step_by(n.max(1))
        .map(|r| r.num_prompt_tokens)
        .sum();
    let cached: usize = results
        .iter()
        .step_by(n.max(1))
        .map(|r| r.num_cached_tokens)
        .sum();
    let completion_tokens: usize = results.iter().map(|r| r.token_ids.len()).sum();
    Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens + completion_tokens,
        prompt_tokens_details: state.opts.enable_prompt_tokens_details.then_some(
            PromptTokensDetails {
                cached_tokens: cached,
            },
        ),
    }
}
