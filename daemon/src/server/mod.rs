//! The OpenAI-compatible HTTP API over the engine actor.

mod chat;
mod completions;
pub mod content_format;
pub mod error;
mod generate;
pub mod limits;
pub mod pooling;
pub mod protocol;
pub mod request_fields;
mod routes;
pub mod state;
mod stream;
pub mod structured;
pub mod tools;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};

pub use error::ApiError;
pub use state::{ApiOptions, AppState};

/// `--allowed-origins` and friends (vLLM defaults: everything allowed).
#[derive(Debug, Clone)]
pub struct CorsSettings {
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub allow_credentials: bool,
}

impl Default for CorsSettings {
    fn default() -> Self {
        CorsSettings {
            allowed_origins: vec!["*".into()],
            allowed_methods: vec!["*".into()],
            allowed_headers: vec!["*".into()],
            allow_credentials: false,
        }
    }
}

fn cors_layer(c: &CorsSettings) -> CorsLayer {
    let star = |v: &[String]| v.iter().any(|s| s == "*");
    let origins = if star(&c.allowed_origins) {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            c.allowed_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    };
    let methods = if star(&c.allowed_methods) {
        AllowMethods::any()
    } else {
        AllowMethods::list(
            c.allowed_methods
                .iter()
                .filter_map(|m| Method::from_bytes(m.as_bytes()).ok()),
        )
    };
    let headers = if star(&c.allowed_headers) {
        AllowHeaders::any()
    } else {
        AllowHeaders::list(
            c.allowed_headers
                .iter()
                .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok()),
        )
    };
    // Credentials cannot be combined with wildcards (the CORS spec); they win only with lists.
    let creds = c.allow_credentials
        && !star(&c.allowed_origins)
        && !star(&c.allowed_methods)
        && !star(&c.allowed_headers);
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods(methods)
        .allow_headers(headers)
        .allow_credentials(creds)
}

/// Bearer-key check for `/v1/*`, in constant time per key so timing reveals nothing.
async fn require_api_key(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if state.opts.api_keys.is_empty() || !req.uri().path().starts_with("/v1") {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let ok = state.opts.api_keys.iter().fold(false, |acc, key| {
        acc | constant_time_eq(given.as_bytes(), key.as_bytes())
    });
    if ok {
        next.run(req).await
    } else {
        ApiError::unauthorized().into_response()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// HTTP metrics per route template, and `X-Request-Id` when enabled.
async fn observe(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let request_id = req.headers().get("x-request-id").cloned();
    let mut resp = next.run(req).await;
    state.metrics.observe_http(
        &method,
        &route,
        resp.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    if state.opts.enable_request_id_headers {
        let id = request_id.unwrap_or_else(|| {
            HeaderValue::from_str(&state::random_id("req"))
                .unwrap_or(HeaderValue::from_static("req"))
        });
        resp.headers_mut().insert("x-request-id", id);
    }
    resp
}

/// The client of a TCP connection, put into each request by the accept loop (`None` on a Unix socket).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<std::net::SocketAddr>);

/// One access-log line per request in uvicorn's format (`127.0.0.1:50000 - "GET /health HTTP/1.1"
/// 200 OK`) under the `uvicorn.access` target, unless `--disable-uvicorn-access-log`.
async fn access_log(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if !state.opts.access_log {
        return next.run(req).await;
    }
    let client = req
        .extensions()
        .get::<ClientAddr>()
        .and_then(|c| c.0)
        .map(|a| a.to_string())
        .unwrap_or_else(|| "-".into());
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let line = format!("{} {target} {:?}", req.method(), req.version());
    let resp = next.run(req).await;
    let status = resp.status();
    tracing::info!(target: "uvicorn.access", "{client} - \"{line}\" {} {}", status.as_u16(), status.canonical_reason().unwrap_or(""));
    resp
}

/// `--root-path`: the API answers both under the prefix (a proxy that passes it on) and without
/// it (a proxy that strips it), as FastAPI does.
pub fn with_root_path(app: Router, root: &str) -> Router {
    Router::new()
        .nest_service(root, app.clone())
        .fallback_service(app)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

pub fn router(state: Arc<AppState>, cors: &CorsSettings) -> Router {
    let mut app = Router::new()
        .route("/v1/completions", post(completions::create_completion))
        .route("/v1/chat/completions", post(chat::create_chat_completion))
        .route("/v1/models", get(routes::list_models))
        .route(
            "/v1/embeddings",
            post(pooling::embeddings::create_embedding),
        )
        .route("/pooling", post(pooling::embeddings::create_pooling))
        .route("/classify", post(pooling::score::create_classify))
        .route("/score", post(pooling::score::create_score))
        .route("/v1/score", post(pooling::score::create_score))
        .route("/rerank", post(pooling::score::create_rerank))
        .route("/v1/rerank", post(pooling::score::create_rerank))
        .route("/v2/rerank", post(pooling::score::create_rerank))
        .route("/tokenize", post(routes::tokenize))
        .route("/detokenize", post(routes::detokenize))
        .route("/health", get(routes::health))
        .route("/ping", get(routes::ping).post(routes::ping))
        .route("/version", get(routes::version))
        .route("/metrics", get(routes::metrics));
    if state.opts.enable_server_load_tracking {
        app = app.route("/load", get(routes::load));
    }
    if state.opts.enable_tokenizer_info_endpoint {
        app = app.route("/get_tokenizer_info", get(routes::tokenizer_info));
    }
    if state.opts.dev_mode {
        tracing::warn!("VLLM_SERVER_DEV_MODE: development endpoints are enabled (GET /server_info, POST /reset_prefix_cache); do not use this in production");
        app = app
            .route("/server_info", get(routes::server_info))
            .route("/reset_prefix_cache", post(routes::reset_prefix_cache));
    }
    if !state.opts.disable_fastapi_docs {
        app = app
            .route("/openapi.json", get(routes::openapi))
            .route("/docs", get(routes::docs));
    }
    app.fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_api_key,
        ))
        .route_layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(DefaultBodyLimit::max(state.opts.max_body_bytes))
        .layer(cors_layer(cors))
        .layer(middleware::from_fn_with_state(state.clone(), access_log))
        .with_state(state)
}
