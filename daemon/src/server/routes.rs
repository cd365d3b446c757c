//! The small endpoints: models, health, version, tokenizer helpers, load, metrics, docs.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::state::{body_bytes, parse_body, unix_now, AppState};

pub async fn list_models(State(state): State<Arc<AppState>>) -> Json<Value> {
    let created = unix_now();
    let data: Vec<Value> = state
        .model_names
        .iter()
        .map(|name| {
            json!({
                "id": name, "object": "model", "created": created, "owned_by": "vllm",
                "root": state.model_root, "parent": null, "max_model_len": state.max_model_len,
                "permission": [{"id": super::state::random_id("modelperm"), "object": "model_permission", "created": created,
                    "allow_create_engine": false, "allow_sampling": true, "allow_logprobs": true, "allow_search_indices": false,
                    "allow_view": true, "allow_fine_tuning": false, "organization": "*", "group": null, "is_blocking": false}]
            })
        })
        .collect();
    Json(json!({"object": "list", "data": data}))
}

pub async fn health(State(state): State<Arc<AppState>>) -> Response {
    match state.engine.dead_reason() {
        None => StatusCode::OK.into_response(),
        Some(reason) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("engine is not running: {reason}"),
        )
        .into_response(),
    }
}

pub async fn ping() -> StatusCode {
    StatusCode::OK
}

pub async fn version() -> Json<Value> {
    Json(json!({"version": env!("CARGO_PKG_VERSION")}))
}

pub async fn load(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({"server_load": state.server_load.load(Ordering::Relaxed)}))
}

#[derive(Deserialize)]
struct TokenizeRequest {
    model: Option<String>,
    prompt: Option<String>,
    messages: Option<Vec<Value>>,
    add_special_tokens: Option<bool>,
    add_generation_prompt: Option<bool>,
    return_token_strs: Option<bool>,
}

pub async fn tokenize(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let (_, req): (Value, TokenizeRequest) = parse_body(&body_bytes(body)?)?;
    state.check_model(req.model.as_deref())?;
    let (text, default_special) = match (req.prompt, req.messages) {
        (Some(p), None) => (p, true),
        (None, Some(messages)) => {
            let (text, _) = super::chat::render_messages(
                &state,
                None,
                &messages,
                req.add_generation_prompt.unwrap_or(true),
                &Default::default(),
            )?;
            (text, false)
        }
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of `prompt` and `messages`",
            ))
        }
    };
    let tokens = state
        .tokenizer
        .encode(&text, req.add_special_tokens.unwrap_or(default_special))
        .map_err(|e| ApiError::bad_param("prompt", e.to_string()))?;
    let token_strs: Option<Vec<String>> = req.return_token_strs.unwrap_or(false).then(|| {
        tokens
            .iter()
            .map(|t| state.tokenizer.id_to_token(*t).unwrap_or_default())
            .collect()
    });
    Ok(Json(
        json!({"count": tokens.len(), "max_model_len": state.max_model_len, "tokens": tokens, "token_strs": token_strs}),
    ))
}

#[derive(Deserialize)]
struct DetokenizeRequest {
    model: Option<String>,
    tokens: Vec<u32>,
}

pub async fn detokenize(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let (_, req): (Value, DetokenizeRequest) = parse_body(&body_bytes(body)?)?;
    state.check_model(req.model.as_deref())?;
    let vocab = state.tokenizer.vocab_size() as u32;
    if let Some(bad) = req.tokens.iter().find(|t| **t >= vocab) {
        return Err(ApiError::bad_param(
            "tokens",
            format!("token id {bad} is out of vocabulary (size {vocab})"),
        ));
    }
    let prompt = state
        .tokenizer
        .decode(&req.tokens, false)
        .map_err(|e| ApiError::bad_param("tokens", e.to_string()))?;
    Ok(Json(json!({"prompt": prompt})))
}

pub async fn tokenizer_info(State(state): State<Arc<AppState>>) -> Json<Value> {
    let t = &state.tokenizer;
    Json(json!({
        "tokenizer_class": "PreTrainedTokenizerFast", "vocab_size": t.vocab_size(),
        "bos_token": t.bos_token(), "eos_token": t.eos_token(), "bos_token_id": t.bos_token_id(), "eos_token_id": t.eos_token_id(),
        "model_max_length": state.max_model_len, "chat_template": t.chat_template(),
    }))
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    // Fresh engine numbers for every scrape; the poller keeps histograms fed in between.
    if let Ok(report) = state.engine.stats().await {
        crate::serve::feed_metrics(&state.metrics, &report);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// `GET /server_info` (`VLLM_SERVER_DEV_MODE`): the configuration, as vLLM's dev endpoint
/// reports it: `?config_format=text` (default) as one string, `json` as an object.
pub async fn server_info(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Response {
    let format = query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("config_format="))
        .unwrap_or("text");
    let config = &state.server_info["vllm_config"];
    match format {
        "json" => Json(state.server_info.clone()).into_response(),
        "text" => Json(
            json!({"vllm_config": config.to_string(), "version": state.server_info["version"]}),
        )
        .into_response(),
        other => ApiError::bad_param(
            "config_format",
            format!("config_format must be text or json, got {other:?}"),
        )
        .into_response(),
    }
}

/// `POST /reset_prefix_cache` (`VLLM_SERVER_DEV_MODE`): 200 once the cache is empty. vLLM only
/// logs a refused reset; we answer 409 so a caller knows the cache was kept (requests hold it).
pub async fn reset_prefix_cache(State(state): State<Arc<AppState>>) -> Response {
    match state.engine.reset_prefix_cache().await {
        Ok(true) => StatusCode::OK.into_response(),
        Ok(false) => ApiError::new(
            StatusCode::CONFLICT,
            "the prefix cache cannot be reset while requests are running; retry when idle",
        )
        .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

pub async fn openapi(State(state): State<Arc<AppState>>) -> Json<Value> {
    let post = |summary: &str| json!({"post": {"summary": summary, "requestBody": {"content": {"application/json": {}}}, "responses": {"200": {"description": "OK"}}}});
    let get = |summary: &str| json!({"get": {"summary": summary, "responses": {"200": {"description": "OK"}}}});
    // FastAPI names the proxy's prefix (`--root-path`) as the server the paths are relative to.
    let servers = state.opts.root_path.as_ref().map(|r| json!([{"url": r}]));
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "vllm-rs", "version": env!("CARGO_PKG_VERSION")},
        "paths": {
            "/v1/completions": post("Create completion"),
            "/v1/chat/completions": post("Create chat completion"),
            "/v1/models": get("List models"),
            "/tokenize": post("Tokenize"),
            "/detokenize": post("Detokenize"),
            "/health": get("Health"),
            "/ping": get("Ping"),
            "/version": get("Version"),
            "/metrics": get("Prometheus metrics"),
            "/load": get("Server load"),
        }
    });
    if let Some(s) = servers {
        doc["servers"] = s;
    }
    Json(doc)
}

pub async fn docs() -> Html<&'static str> {
    Html("<!doctype html><html><head><title>vllm-rs API</title></head><body><h1>vllm-rs</h1><p>OpenAI-compatible API. The machine-readable description is at <a href=\"openapi.json\">/openapi.json</a>.</p></body></html>")
}
