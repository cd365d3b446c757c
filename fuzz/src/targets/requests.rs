//! The HTTP request bodies: each input is POSTed through the real axum router (auth, body
//! limit, JSON parsing, field checks, sampling parameters, chat template, tools, structured
//! outputs compiled by llguidance, tokenization) to an engine handle with no engine behind it.
//! A body that passes every check therefore ends in the 503 of a dead engine, which proves it
//! reached submission; anything else must be an OpenAI error body with a 4xx status.

use std::sync::atomic::AtomicI64;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use daemon::config::{EnvSettings, ServeConfig};
use daemon::metrics::{CacheConfigInfo, Metrics};
use daemon::serve::plan::ServePlan;
use daemon::server::{content_format, router, AppState, CorsSettings};
use engine::actor::EngineHandle;
use engine::gguf::GgufFile;
use engine::sampling::SamplingDefaults;
use engine::structured::GrammarCompiler;
use engine::tokenizer::{ChatTemplate, Tokenizer};
use http_body_util::BodyExt;
use serde_json::Value;

/// What the detached engine says; a 503 carrying it means "the body was accepted".
const NO_ENGINE: &str = "fuzzing: no engine behind this server";
const MAX_MODEL_LEN: usize = 2048;

/// Server options as `vllmd` builds them, with the tool parser on so tool fields are parsed.
const SERVE_YAML: &str = "enable-auto-tool-choice: true\ntool-call-parser: hermes\n";

/// The router over the default model's tokenizer and template, or why it cannot be built
/// (the model is not in the cache).
pub fn app() -> Result<&'static Router, &'static str> {
    static APP: OnceLock<Result<Router, String>> = OnceLock::new();
    APP.get_or_init(build).as_ref().map_err(String::as_str)
}

fn build() -> Result<Router, String> {
    let path = engine::paths::default_model_path();
    if !path.is_file() {
        return Err(format!(
            "{} is missing (scripts/fetch-models.sh fetches it)",
            path.display()
        ));
    }
    let gguf = GgufFile::open(&path).map_err(|e| e.to_string())?;
    let tokenizer = Arc::new(Tokenizer::from_gguf(&gguf).map_err(|e| e.to_string())?);
    let source = tokenizer.chat_template().map(str::to_string);
    let chat_template = match &source {
        Some(src) => Some(
            ChatTemplate::new(src, tokenizer.bos_token(), tokenizer.eos_token())
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let env = EnvSettings::default();
    let cfg = ServeConfig::from_yaml(SERVE_YAML, &env).map_err(|e| e.to_string())?;
    let plan = ServePlan::new(&cfg, &env).map_err(|e| e.to_string())?;
    let eos = tokenizer.eos_token_id().unwrap_or(0);
    let grammar = GrammarCompiler::new(tokenizer.clone(), tokenizer.vocab_size(), eos)
        .map(Arc::new)
        .map_err(|e| e.to_string());
    let state = AppState {
        engine: EngineHandle::detached(NO_ENGINE),
        tokenizer,
        content_format: content_format::resolve(
            &plan.api_options().chat_template_content_format,
            source.as_deref(),
        ),
        chat_template,
        server_info: Value::Null,
        model_names: vec!["fuzz-model".into()],
        model_root: path.display().to_string(),
        max_model_len: MAX_MODEL_LEN,
        defaults: SamplingDefaults::default(),
        opts: plan.api_options().clone(),
        metrics: Arc::new(Metrics::new(
            "fuzz-model",
            MAX_MODEL_LEN,
            CacheConfigInfo::default(),
        )),
        started: Instant::now(),
        server_load: AtomicI64::new(0),
        grammar,
        reasoning_gate: None,
        pooling: None,
    };
    Ok(router(Arc::new(state), &CorsSettings::default()))
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime for the request fuzz targets");
}

/// POSTs `body` to `path` and checks the answer's shape.
fn post(path: &str, body: &[u8]) {
    let app = match app() {
        Ok(app) => app.clone(),
        Err(why) => panic!("request fuzz targets need the default model: {why}"),
    };
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .expect("request");
    let (status, bytes) = RUNTIME.with(|rt| {
        rt.block_on(async move {
            let response = tower::ServiceExt::oneshot(app, request)
                .await
                .expect("the router is infallible");
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            (status, bytes)
        })
    });
    check_response(path, status, &bytes);
}

fn check_response(path: &str, status: StatusCode, body: &[u8]) {
    let text = String::from_utf8_lossy(body);
    if status.is_success() {
        // Only /tokenize and /detokenize answer without the engine.
        assert!(
            path == "/tokenize" || path == "/detokenize",
            "{path}: {status} without an engine: {text}"
        );
        serde_json::from_slice::<Value>(body)
            .unwrap_or_else(|e| panic!("{path}: {status} body is not JSON ({e}): {text}"));
        return;
    }
    let json: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{path}: {status} body is not JSON ({e}): {text}"));
    let message = json["error"]["message"].as_str();
    assert!(
        message.is_some() && json["error"]["type"].is_string(),
        "{path}: {status} body is not an OpenAI error: {text}"
    );
    if status.is_server_error() {
        assert!(
            status == StatusCode::SERVICE_UNAVAILABLE,
            "{path}: {status} (a server error for a client's body): {text}"
        );
    }
}

pub fn completions(data: &[u8]) {
    post("/v1/completions", data);
}

pub fn chat(data: &[u8]) {
    post("/v1/chat/completions", data);
}

/// /tokenize and /detokenize share one corpus: each body goes to both.
pub fn tokenize(data: &[u8]) {
    post("/tokenize", data);
    post("/detokenize", data);
}
