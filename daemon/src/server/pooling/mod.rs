//! The pooling endpoints (`--runner pooling`): `/v1/embeddings`, `/pooling`, `/classify`,
//! `/score` and `/rerank`, in vLLM's request and response shapes. Each prompt becomes one
//! prefill-only engine request whose single output carries the pooled vector.

pub mod embeddings;
pub mod protocol;
pub mod score;

use engine::pooling::{PoolerConfig, PoolingKind, PoolingParams, PoolingSetup, Runner};
use engine::request::EngineRequest;
use engine::sampling::SamplingParams;
use serde_json::{json, Value};

use super::error::ApiError;
use super::state::AppState;
use protocol::PromptInput;

/// What a pooling server serves, for the handlers.
#[derive(Debug, Clone)]
pub struct PoolingInfo {
    pub kind: PoolingKind,
    /// Label names of a classifier (index order).
    pub labels: Vec<String>,
}

/// `--runner`/`--convert`/`--task`/`--override-pooler-config` resolved for a loaded model:
/// the engine's pooling setup (`None`: generate). Logs the choice.
pub fn engine_setup(
    runner: &str,
    convert: &str,
    task: Option<&str>,
    override_pooler_config: Option<&Value>,
    is_classifier: bool,
    model_path: &std::path::Path,
) -> Result<Option<PoolingSetup>, String> {
    let chosen = engine::pooling::resolve_runner(runner, convert, task, is_classifier)
        .map_err(|e| e.to_string())?;
    match chosen {
        Runner::Generate => {
            if override_pooler_config.is_some() {
                return Err("--override-pooler-config applies only to the pooling runner (--runner pooling)".into());
            }
            tracing::info!("runner: generate");
            Ok(None)
        }
        Runner::Pooling(kind) => {
            let (pooler, source) =
                PoolerConfig::resolve(kind, Some(model_path), override_pooler_config)
                    .map_err(|e| e.to_string())?;
            tracing::info!(
                "runner: pooling (convert: {}); pooler: {} (from {source})",
                kind.as_str(),
                pooler.describe()
            );
            Ok(Some(PoolingSetup { kind, pooler }))
        }
    }
}

impl AppState {
    /// The generation endpoints refuse on a pooling server.
    pub fn require_generate(&self) -> Result<(), ApiError> {
        match &self.pooling {
            None => Ok(()),
            Some(p) => Err(ApiError::bad_request(format!(
                "this server runs the pooling runner ({}): it serves /v1/embeddings, /pooling, /classify, /score and /rerank, not generation",
                p.kind.as_str()
            ))),
        }
    }

    /// A pooling endpoint's check: the server pools, and as `kind` when given.
    pub fn require_pooling(
        &self,
        endpoint: &str,
        kind: Option<PoolingKind>,
    ) -> Result<&PoolingInfo, ApiError> {
        let Some(p) = &self.pooling else {
            return Err(ApiError::bad_request(format!(
                "{endpoint} needs a pooling model: this server runs the generate runner (start it with --runner pooling)"
            )));
        };
        if let Some(k) = kind.filter(|k| *k != p.kind) {
            return Err(ApiError::bad_request(format!(
                "{endpoint} needs a model served as `{}`; this one is served as `{}`",
                k.as_str(),
                p.kind.as_str()
            )));
        }
        Ok(p)
    }

    /// Token ids of one prompt, with `truncate_prompt_tokens` applied (keeps the last tokens,
    /// as vLLM does; -1 means `max_model_len`).
    pub fn pooling_tokens(
        &self,
        input: &PromptInput,
        add_special_tokens: bool,
        truncate: Option<i64>,
    ) -> Result<Vec<u32>, ApiError> {
        let mut ids = match input {
            PromptInput::Text(t) => self
                .tokenizer
                .encode(t, add_special_tokens)
                .map_err(|e| ApiError::bad_param("input", e.to_string()))?,
            PromptInput::Tokens(ids) => ids.clone(),
        };
        truncate_tokens(&mut ids, truncate, self.max_model_len)?;
        Ok(ids)
    }

    /// Pools each prompt (all submitted at once, so they batch) and returns the vectors in
    /// order, with each prompt's token count.
    pub async fn pool(
        &self,
        prompts: Vec<Vec<u32>>,
        params: &PoolingParams,
    ) -> Result<Vec<(Vec<f32>, usize)>, ApiError> {
        if prompts.is_empty() {
            return Err(ApiError::bad_param("input", "the input cannot be empty"));
        }
        let mut streams = Vec::with_capacity(prompts.len());
        for ids in prompts {
            if ids.is_empty() {
                return Err(ApiError::bad_param("input", "an input cannot be empty"));
            }
            if ids.len() > self.max_model_len {
                return Err(ApiError::bad_param(
                    "input",
                    format!(
                        "This model's maximum context length is {} tokens. However, you requested {} tokens in the input. Please reduce the length of the input (or set truncate_prompt_tokens).",
                        self.max_model_len,
                        ids.len()
                    ),
                ));
            }
            let mut req = EngineRequest::new(ids, SamplingParams::default());
            req.pooling = Some(params.clone());
            streams.push(self.engine.submit(req).await?);
        }
        let mut out = Vec::with_capacity(streams.len());
        for mut s in streams {
            let mut result = None;
            while let Some(o) = s.outputs.recv().await {
                if o.finished.is_some() {
                    result = o.pooled.map(|v| (v, o.num_prompt_tokens));
                    break;
                }
            }
            out.push(result.ok_or_else(|| {
                ApiError::new(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "the engine aborted the request",
                )
            })?);
        }
        Ok(out)
    }
}

/// `truncate_prompt_tokens`: keep the last `k` tokens (`-1`: `max_model_len`).
pub fn truncate_tokens(
    ids: &mut Vec<u32>,
    truncate: Option<i64>,
    max_model_len: usize,
) -> Result<(), ApiError> {
    let k = match truncate {
        None => return Ok(()),
        Some(-1) => max_model_len,
        Some(k) if k >= 1 && (k as usize) <= max_model_len => k as usize,
        Some(k) => {
            return Err(ApiError::bad_param(
                "truncate_prompt_tokens",
                format!("truncate_prompt_tokens must be -1 or between 1 and max_model_len ({max_model_len}), got {k}"),
            ))
        }
    };
    if ids.len() > k {
        ids.drain(..ids.len() - k);
    }
    Ok(())
}

/// vLLM's `usage` of pooling responses: prompt tokens only.
pub fn usage(prompt_tokens: usize) -> Value {
    json!({"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens, "completion_tokens": 0, "prompt_tokens_details": null})
}
