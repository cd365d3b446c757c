//! `vllmd`: loads a model and serves it.

mod args;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::{routing::get, Json, Router};
use clap::Parser;
use engine::loader::{self, LoadOptions};

use crate::args::ServeArgs;

fn init_logging() {
    let level = std::env::var("VLLM_LOGGING_LEVEL").unwrap_or_else(|_| "info".into()).to_lowercase();
    let filter = tracing_subscriber::EnvFilter::try_new(format!("{level},tokenizers=warn"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

struct ServerState {
    model_name: String,
    max_model_len: usize,
}

fn main() -> anyhow::Result<()> {
    let args = ServeArgs::parse();
    init_logging();

    let model_path: PathBuf = match args.model.clone().or(args.model_tag.clone()) {
        Some(p) => p,
        None => {
            let p = engine::paths::default_model_path();
            if !p.is_file() {
                eprintln!(
                    "error: the default model {} is missing; fetch it with `scripts/fetch-models.sh` (or pass --model PATH)",
                    p.display()
                );
                std::process::exit(1);
            }
            p
        }
    };
    let opts = LoadOptions {
        model: model_path.clone(),
        load_format: args.load_format.parse().map_err(anyhow::Error::msg)?,
        dtype: args.dtype.parse().map_err(anyhow::Error::msg)?,
        tokenizer: args.tokenizer.clone(),
        hf_config_path: args.hf_config_path.clone(),
        max_model_len: args.max_model_len,
        allow_long_max_model_len: std::env::var("VLLM_ALLOW_LONG_MAX_MODEL_LEN").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true")),
        seed: args.seed,
    };
    tracing::info!(model = %model_path.display(), "loading model");
    // A live counter on a terminal; in a log file, one line per quarter is enough.
    let on_terminal = std::io::stderr().is_terminal();
    let progress = move |done: usize, total: usize| {
        let mut err = std::io::stderr();
        if on_terminal {
            let _ = write!(err, "\rLoading model layers: {done}/{total}");
            if done == total {
                let _ = writeln!(err);
            }
            let _ = err.flush();
        } else if done == total || (done * 4 / total.max(1)) != ((done - 1) * 4 / total.max(1)) {
            tracing::info!("loading model layers: {done}/{total}");
        }
    };
    let loaded = match loader::load(&opts, &progress) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let cfg = loaded.model.config();
    tracing::info!(
        architecture = cfg.architecture.hf_name(),
        layers = cfg.num_hidden_layers,
        hidden = cfg.hidden_size,
        vocab = cfg.vocab_size,
        weights_mib = loaded.model.weight_bytes() / (1 << 20),
        dtype = ?loaded.weight_dtype,
        max_model_len = loaded.max_model_len,
        load_s = format!("{:.2}", loaded.load_time.as_secs_f64()),
        "model loaded"
    );

    let model_name = args
        .served_model_name
        .first()
        .cloned()
        .unwrap_or_else(|| model_path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default());
    let state = Arc::new(ServerState { model_name, max_model_len: loaded.max_model_len });

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    rt.block_on(async move {
        let app = Router::new()
            .route("/health", get(|| async { "" }))
            .route(
                "/v1/models",
                get({
                    let state = state.clone();
                    move || async move {
                        Json(serde_json::json!({
                            "object": "list",
                            "data": [{ "id": state.model_name, "object": "model", "owned_by": "vllm-rs", "max_model_len": state.max_model_len }]
                        }))
                    }
                }),
            );
        let addr = format!("{}:{}", args.host, args.port);
        let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("binding {addr}"))?;
        tracing::info!("ready: listening on http://{addr}");
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("serving HTTP")
    })
}
