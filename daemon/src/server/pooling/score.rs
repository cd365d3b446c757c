//! `POST /classify`, `/score` (`/v1/score`) and `/rerank` (`/v1/rerank`, `/v2/rerank`).
//!
//! Scoring a pair follows vLLM: with a classification head (a cross-encoder) the pair is one
//! prompt, tokenized as the tokenizer joins a text pair, and the score is the head's activated
//! output; with an embedding model the two texts are embedded apart and the score is the
//! cosine similarity of the embeddings.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use engine::pooling::{PoolingKind, PoolingParams};
use serde_json::{json, Value};

use super::protocol::{
    parse_input, ClassificationRequest, PromptInput, RerankRequest, ScoreRequest,
};
use super::{truncate_tokens, usage};
use crate::server::error::ApiError;
use crate::server::state::{body_bytes, parse_body, random_id, unix_now, AppState};

pub async fn create_classify(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let (_, req): (Value, ClassificationRequest) = parse_body(&body_bytes(body)?)?;
    state.check_model(req.model.as_deref())?;
    let labels = state
        .require_pooling("/classify", Some(PoolingKind::Classify))?
        .labels
        .clone();
    let ids = parse_input(&req.input)?
        .iter()
        .map(|i| state.pooling_tokens(i, true, req.truncate_prompt_tokens))
        .collect::<Result<Vec<_>, _>>()?;
    let params = PoolingParams {
        activation: req.activation,
        ..Default::default()
    };
    let _guard = state.load_guard();
    let pooled = state.pool(ids, &params).await?;
    let tokens: usize = pooled.iter().map(|p| p.1).sum();
    let data: Vec<Value> = pooled
        .iter()
        .enumerate()
        .map(|(i, (probs, _))| {
            let best = probs
                .iter()
                .enumerate()
                .fold(0, |b, (j, p)| if *p > probs[b] { j } else { b });
            json!({"index": i, "label": labels.get(best), "probs": probs, "num_classes": probs.len()})
        })
        .collect();
    Ok(Json(json!({
        "id": random_id("classify"), "object": "list", "created": unix_now(),
        "model": state.model_name(), "data": data, "usage": usage(tokens),
    })))
}

fn texts(v: &Value, param: &str) -> Result<Vec<String>, ApiError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                ApiError::bad_param(
                    param,
                    format!("{param} must be a string or a list of strings"),
                )
            }),
        _ => Err(ApiError::bad_param(
            param,
            format!("{param} must be a non-empty string or list of strings"),
        )),
    }
}

/// Scores each (left, right) pair; returns the scores and the prompt tokens used.
async fn score_pairs(
    state: &AppState,
    pairs: &[(String, String)],
    truncate: Option<i64>,
    activation: Option<bool>,
    endpoint: &str,
) -> Result<(Vec<f32>, usize), ApiError> {
    let info = state.require_pooling(endpoint, None)?;
    match info.kind {
        PoolingKind::Classify => {
            if info.labels.len() != 1 {
                return Err(ApiError::bad_request(format!(
                    "{endpoint} needs a classifier with one label (a cross-encoder); this one has {}",
                    info.labels.len()
                )));
            }
            let mut prompts = Vec::with_capacity(pairs.len());
            for (a, b) in pairs {
                let enc = state
                    .tokenizer
                    .inner()
                    .encode((a.as_str(), b.as_str()), true)
                    .map_err(|e| ApiError::bad_param("text_1", e.to_string()))?;
                let mut ids = enc.get_ids().to_vec();
                truncate_tokens(&mut ids, truncate, state.max_model_len)?;
                prompts.push(ids);
            }
            let params = PoolingParams {
                activation,
                ..Default::default()
            };
            let pooled = state.pool(prompts, &params).await?;
            let tokens = pooled.iter().map(|p| p.1).sum();
            Ok((pooled.iter().map(|(v, _)| v[0]).collect(), tokens))
        }
        PoolingKind::Embed => {
            let mut prompts = Vec::with_capacity(pairs.len() * 2);
            for (a, b) in pairs {
                for t in [a, b] {
                    prompts.push(state.pooling_tokens(
                        &PromptInput::Text(t.clone()),
                        true,
                        truncate,
                    )?);
                }
            }
            let pooled = state.pool(prompts, &PoolingParams::default()).await?;
            let tokens = pooled.iter().map(|p| p.1).sum();
            let scores = pooled
                .chunks_exact(2)
                .map(|p| cosine(&p[0].0, &p[1].0))
                .collect();
            Ok((scores, tokens))
        }
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    (dot / (na * nb).max(1e-12)) as f32
}

pub async fn create_score(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let (_, req): (Value, ScoreRequest) = parse_body(&body_bytes(body)?)?;
    state.check_model(req.model.as_deref())?;
    state.require_pooling("/score", None)?;
    let left = texts(&req.text_1, "text_1")?;
    let right = texts(&req.text_2, "text_2")?;
    // vLLM: one text_1 against every text_2, or two lists of the same length, pairwise.
    let pairs: Vec<(String, String)> = if left.len() == 1 {
        right.iter().map(|r| (left[0].clone(), r.clone())).collect()
    } else if left.len() == right.len() {
        left.into_iter().zip(right).collect()
    } else {
        return Err(ApiError::bad_request(format!(
            "text_1 has {} texts and text_2 {}: give one text_1, or lists of the same length",
            left.len(),
            right.len()
        )));
    };
    let _guard = state.load_guard();
    let (scores, tokens) = score_pairs(
        &state,
        &pairs,
        req.truncate_prompt_tokens,
        req.activation,
        "/score",
    )
    .await?;
    let data: Vec<Value> = scores
        .iter()
        .enumerate()
        .map(|(i, s)| json!({"index": i, "object": "score", "score": s}))
        .collect();
    Ok(Json(json!({
        "id": random_id("score"), "object": "list", "created": unix_now(),
        "model": state.model_name(), "data": data, "usage": usage(tokens),
    })))
}

pub async fn create_rerank(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let (_, req): (Value, RerankRequest) = parse_body(&body_bytes(body)?)?;
    state.check_model(req.model.as_deref())?;
    state.require_pooling("/rerank", None)?;
    if req.documents.is_empty() {
        return Err(ApiError::bad_param(
            "documents",
            "documents cannot be empty",
        ));
    }
    // Cohere also accepts documents as objects with a `text` field.
    let docs = req
        .documents
        .iter()
        .map(|d| match d {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("text").and_then(Value::as_str).map(str::to_string),
            _ => None,
        })
        .collect::<Option<Vec<String>>>()
        .ok_or_else(|| {
            ApiError::bad_param(
                "documents",
                "documents must be strings or objects with a `text` field",
            )
        })?;
    let pairs: Vec<(String, String)> = docs
        .iter()
        .map(|d| (req.query.clone(), d.clone()))
        .collect();
    let _guard = state.load_guard();
    let (scores, tokens) =
        score_pairs(&state, &pairs, req.truncate_prompt_tokens, None, "/rerank").await?;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b)));
    let top_n = req
        .top_n
        .filter(|n| *n > 0)
        .unwrap_or(order.len())
        .min(order.len());
    let with_docs = req.return_documents.unwrap_or(true);
    let results: Vec<Value> = order[..top_n]
        .iter()
        .map(|&i| {
            let doc = with_docs.then(|| json!({"text": docs[i]}));
            json!({"index": i, "document": doc, "relevance_score": scores[i]})
        })
        .collect();
    Ok(Json(json!({
        "id": random_id("rerank"), "model": state.model_name(),
        "usage": {"total_tokens": tokens}, "results": results,
    })))
}
