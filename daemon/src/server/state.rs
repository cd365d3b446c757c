//! What every handler shares: the engine handle, the tokenizer, the chat template, options.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use chat_parsers::{ReasoningParserKind, ToolParserKind};
use engine::actor::EngineHandle;
use engine::sampling::{SamplingDefaults, SamplingParams};
use engine::structured::{GrammarCompiler, GrammarOptions, ReasoningGate};
use engine::tokenizer::{ChatTemplate, Tokenizer};
use rand::Rng;
use serde_json::Value;

use super::content_format::ContentFormat;
use super::error::ApiError;
use crate::metrics::Metrics;

/// Largest `n` (samples per prompt) one request may ask for.
pub const MAX_N: usize = 128;

/// Frontend switches (the Frontend group of `vllm serve`).
#[derive(Debug, Clone, Default)]
pub struct ApiOptions {
    pub api_keys: Vec<String>,
    pub response_role: String,
    pub enable_prompt_tokens_details: bool,
    pub enable_force_include_usage: bool,
    pub return_tokens_as_token_ids: bool,
    pub enable_request_id_headers: bool,
    pub disable_fastapi_docs: bool,
    pub enable_server_load_tracking: bool,
    pub enable_tokenizer_info_endpoint: bool,
    pub enable_log_requests: bool,
    pub enable_log_outputs: bool,
    pub max_log_len: Option<usize>,
    /// Largest request body accepted (bytes); larger ones get 413.
    pub max_body_bytes: usize,
    /// `--chat-template-content-format` as given (`auto`, `string`, `openai`).
    pub chat_template_content_format: String,
    /// `VLLM_SERVER_DEV_MODE`: serve the development endpoints.
    pub dev_mode: bool,
    /// One uvicorn-style access-log line per HTTP request (`--disable-uvicorn-access-log` turns it off).
    pub access_log: bool,
    /// `--root-path`: the prefix a path-routing proxy puts in front of the API.
    pub root_path: Option<String>,
    /// `--exclude-tools-when-tool-choice-none`.
    pub exclude_tools_when_tool_choice_none: bool,
    /// `--guided-decoding-disable-*`: the server's structured-output options.
    pub grammar: GrammarOptions,
    /// `--enable-auto-tool-choice`.
    pub enable_auto_tool_choice: bool,
    /// `--tool-call-parser`.
    pub tool_call_parser: Option<ToolParserKind>,
    /// `--reasoning-parser`.
    pub reasoning_parser: Option<ReasoningParserKind>,
}

impl ApiOptions {
    /// The parser for `tool_choice: "auto"`, when the server enables it.
    pub fn auto_tool_parser(&self) -> Option<ToolParserKind> {
        self.tool_call_parser
            .filter(|_| self.enable_auto_tool_choice)
    }
}

pub struct AppState {
    pub engine: EngineHandle,
    pub tokenizer: Arc<Tokenizer>,
    pub chat_template: Option<ChatTemplate>,
    /// How message content reaches `chat_template` (resolved from the option and its source).
    pub content_format: ContentFormat,
    /// What `GET /server_info` reports (dev mode): the effective configuration.
    pub server_info: Value,
    /// Served names; the first is reported in responses and metrics.
    pub model_names: Vec<String>,
    /// What `/v1/models` reports as `root` (the path the model came from).
    pub model_root: String,
    pub max_model_len: usize,
    pub defaults: SamplingDefaults,
    pub opts: ApiOptions,
    pub metrics: Arc<Metrics>,
    pub started: Instant,
    /// Requests in flight (`/load`, `--enable-server-load-tracking`).
    pub server_load: AtomicI64,
    /// The structured-output compiler, or why this model's tokenizer cannot have one.
    pub grammar: Result<Arc<GrammarCompiler>, String>,
    /// With `--reasoning-parser`: constraints start after the reasoning's end token.
    pub reasoning_gate: Option<ReasoningGate>,
    /// Set on a pooling server (`--runner pooling`): what it serves.
    pub pooling: Option<super::pooling::PoolingInfo>,
}

impl AppState {
    pub fn model_name(&self) -> &str {
        self.model_names.first().map(String::as_str).unwrap_or("")
    }

    /// The model a request names must be one we serve (absent means the default).
    pub fn check_model(&self, requested: Option<&str>) -> Result<(), ApiError> {
        match requested {
            Some(m) if !m.is_empty() && !self.model_names.iter().any(|n| n == m) => Err(
                ApiError::not_found(format!("The model `{m}` does not exist.")),
            ),
            _ => Ok(()),
        }
    }

    pub fn load_guard(self: &Arc<Self>) -> LoadGuard {
        self.server_load.fetch_add(1, Ordering::Relaxed);
        LoadGuard(self.clone())
    }

    /// Token text for logprobs: the decoded piece, or `token_id:N` when asked.
    pub fn token_text(&self, id: u32, as_ids: bool) -> String {
        if as_ids || self.opts.return_tokens_as_token_ids {
            return format!("token_id:{id}");
        }
        self.tokenizer.decode(&[id], false).unwrap_or_default()
    }

    /// `--enable-log-requests`: one line per request, prompt cut at `--max-log-len`.
    pub fn log_request(&self, id: &str, prompt: &str, ids: &[u32], params: &SamplingParams) {
        if !self.opts.enable_log_requests {
            return;
        }
        let max = self.opts.max_log_len.unwrap_or(usize::MAX);
        let text: String = prompt.chars().take(max).collect();
        let ids = &ids[..ids.len().min(max)];
        tracing::info!("Received request {id}: prompt: {text:?}, params: {params:?}, prompt_token_ids: {ids:?}");
    }

    /// `--enable-log-outputs`: the generated text of a finished request.
    pub fn log_output(&self, id: &str, outputs: &[&str]) {
        if !self.opts.enable_log_outputs {
            return;
        }
        let max = self.opts.max_log_len.unwrap_or(usize::MAX);
        let cut: Vec<String> = outputs
            .iter()
            .map(|t| t.chars().take(max).collect())
            .collect();
        tracing::info!("Generated response {id}: outputs: {cut:?}");
    }

    /// Sampling parameters of a request body: the model's defaults, then the request's fields.
    /// `logprobs`, `stop` and the chat-only spellings are normalised to the engine's fields.
    pub fn sampling_params(
        &self,
        raw: &Value,
        logprobs: Option<usize>,
    ) -> Result<SamplingParams, ApiError> {
        let mut obj = raw.as_object().cloned().unwrap_or_default();
        obj.remove("logprobs");
        obj.remove("top_logprobs");
        if let Some(l) = logprobs {
            obj.insert("logprobs".into(), Value::from(l));
        }
        if let Some(Value::String(s)) = obj.get("stop") {
            let one = Value::Array(vec![Value::String(s.clone())]);
            obj.insert("stop".into(), one);
        }
        if obj.get("max_tokens").is_none_or(Value::is_null) {
            if let Some(m) = obj.get("max_completion_tokens").cloned() {
                obj.insert("max_tokens".into(), m);
            }
        }
        let params = self.defaults.params_from_json(&Value::Object(obj))?;
        // Each sample is a sequence in the engine: an unbounded n would let one request
        // flood the queue.
        if params.n < 1 {
            return Err(ApiError::bad_param(
                "n",
                format!("n must be at least 1, got {}", params.n),
            ));
        }
        if params.n > MAX_N {
            return Err(ApiError::bad_param(
                "n",
                format!("n must be at most {MAX_N}, got {}", params.n),
            ));
        }
        super::limits::check(&params)?;
        Ok(params)
    }
}

/// Decrements the in-flight count when the response is done.
pub struct LoadGuard(Arc<AppState>);

impl Drop for LoadGuard {
    fn drop(&mut self) {
        self.0.server_load.fetch_sub(1, Ordering::Relaxed);
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `prefix-<32 hex digits>`, like vLLM's random ids.
pub fn random_id(prefix: &str) -> String {
    let v: u128 = rand::rng().random();
    format!("{prefix}-{v:032x}")
}

/// Parses a JSON body into `T`, with OpenAI-style 400s for bad JSON or wrong types.
pub fn parse_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<(Value, T), ApiError> {
    let raw: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    if !raw.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    let typed = serde_json::from_value(raw.clone())
        .map_err(|e| ApiError::bad_request(format!("invalid request: {e}")))?;
    Ok((raw, typed))
}

/// The body, or the error the extractor hit (413 for a body over the limit) in OpenAI shape.
pub fn body_bytes(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<axum::body::Bytes, ApiError> {
    body.map_err(|e| ApiError::new(e.status(), e.body_text()))
}

/// vLLM reports impossible tokens with -9999.0: JSON has no -inf.
pub fn finite_logprob(v: f32) -> f32 {
    if v.is_finite() {
        v
    } else {
        -9999.0
    }
}
