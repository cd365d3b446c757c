//! `POST /v1/embeddings` and `POST /pooling` (vLLM's shapes; `/pooling` returns the raw pooled
//! vector under `data`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use engine::pooling::{PoolingKind, PoolingParams};
use serde_json::{json, Value};

use super::protocol::{encode_vector, parse_input, EmbeddingRequest, PromptInput};
use super::usage;
use crate::server::error::ApiError;
use crate::server::state::{body_bytes, parse_body, random_id, unix_now, AppState};

/// The prompts of an embeddings-style request: `input`, or chat `messages` rendered by the
/// template (then tokenized without adding special tokens again, as vLLM does).
fn prompts(state: &AppState, req: &EmbeddingRequest) -> Result<Vec<Vec<u32>>, ApiError> {
    let (inputs, special) = match (&req.input, &req.messages) {
        (Some(input), None) => (parse_input(input)?, req.add_special_tokens.unwrap_or(true)),
        (None, Some(messages)) => {
            let (text, _) = crate::server::chat::render_messages(
                state,
                None,
                messages,
                req.add_generation_prompt.unwrap_or(false),
                &Default::default(),
            )?;
            (
                vec![PromptInput::Text(text)],
                req.add_special_tokens.unwrap_or(false),
            )
        }
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of `input` and `messages`",
            ))
        }
    };
    inputs
        .iter()
        .map(|i| state.pooling_tokens(i, special, req.truncate_prompt_tokens))
        .collect()
}

async fn run(
    state: &Arc<AppState>,
    body: Result<Bytes, BytesRejection>,
    endpoint: &str,
) -> Result<(EmbeddingRequest, Vec<(Vec<f32>, usize)>), ApiError> {
    let (_, req): (Value, EmbeddingRequest) = parse_body(&body_bytes(body)?)?;
    state.check_model(req.model.as_deref())?;
    let kind = (endpoint == "/v1/embeddings").then_some(PoolingKind::Embed);
    state.require_pooling(endpoint, kind)?;
    if !matches!(req.encoding_format.as_str(), "float" | "base64") {
        return Err(ApiError::bad_param(
            "encoding_format",
            format!(
                "encoding_format must be `float` or `base64`, got `{}`",
                req.encoding_format
            ),
        ));
    }
    if req.dimensions == Some(0) {
        return Err(ApiError::bad_param(
            "dimensions",
            "dimensions must be at least 1",
        ));
    }
    let ids = prompts(state, &req)?;
    let params = PoolingParams {
        dimensions: req.dimensions,
        normalize: req.normalize,
        activation: None,
    };
    let _guard = state.load_guard();
    let pooled = state.pool(ids, &params).await?;
    Ok((req, pooled))
}

pub async fn create_embedding(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let (req, pooled) = run(&state, body, "/v1/embeddings").await?;
    let tokens: usize = pooled.iter().map(|p| p.1).sum();
    let data: Vec<Value> = pooled
        .iter()
        .enumerate()
        .map(|(i, (v, _))| json!({"index": i, "object": "embedding", "embedding": encode_vector(v, &req.encoding_format)}))
        .collect();
    Ok(Json(json!({
        "id": random_id("embd"), "object": "list", "created": unix_now(),
        "model": state.model_name(), "data": data, "usage": usage(tokens),
    })))
}

pub async fn create_pooling(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let (req, pooled) = run(&state, body, "/pooling").await?;
    let tokens: usize = pooled.iter().map(|p| p.1).sum();
    let data: Vec<Value> = pooled
        .iter()
        .enumerate()
        .map(|(i, (v, _))| json!({"index": i, "object": "pooling", "data": encode_vector(v, &req.encoding_format)}))
        .collect();
    Ok(Json(json!({
        "id": random_id("pool"), "object": "list", "created": unix_now(),
        "model": state.model_name(), "data": data, "usage": usage(tokens),
    })))
}
