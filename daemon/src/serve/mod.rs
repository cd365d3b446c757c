//! Start-up and shutdown of the server: configuration → model → engine thread → HTTP.
//! Shared by `vllmd` and `vllm serve`.

use engine::structured::{GrammarCompiler, ReasoningGate};
use std::path::PathBuf;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::actor::{EngineHandle, StatsReport};
use engine::llm_engine::LlmEngine;
use engine::loader;
use engine::sampling::SamplingDefaults;
use engine::tokenizer::ChatTemplate;

pub mod engine_options;
mod listener;
pub mod names;
pub mod plan;
pub mod tls;

use listener::Listener;
pub use plan::ServePlan;

use crate::config::{EnvSettings, ServeConfig};
use crate::metrics::{CacheConfigInfo, Metrics, TokenLatencies};
use crate::server::{self, AppState};

/// Why the server could not start (or stopped badly). One line each, for the user.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Config(String),
    #[error("the default model {0} is missing; fetch it with `scripts/fetch-models.sh` (or pass --model PATH)")]
    DefaultModelMissing(PathBuf),
    #[error(transparent)]
    Load(#[from] engine::LoadError),
    #[error(transparent)]
    Hub(#[from] hub::HubError),
    #[error(transparent)]
    Engine(#[from] engine::llm_engine::EngineError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("the engine died: {0}")]
    EngineDied(String),
}

/// Everything before the HTTP listener: the model, the engine thread and the shared state.
pub fn build_state(cfg: &ServeConfig, env: &EnvSettings) -> Result<Arc<AppState>, ServeError> {
    cfg.check_supported()
        .map_err(|e| ServeError::Config(e.to_string()))?;
    let warnings = cfg
        .no_effect_warning()
        .into_iter()
        .chain(env.warnings())
        .chain(plan::deprecation_warnings(cfg, env));
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    let mut plan = ServePlan::new(cfg, env)?;
    if cfg.model_config.model.is_none() && cfg.model_tag.is_none() && !plan.load.model.is_file() {
        return Err(ServeError::DefaultModelMissing(plan.load.model.clone()));
    }
    // Repo ids become cache paths here (downloading what is missing), before any weight is read.
    let model_repo = names::resolve(&mut plan)?;
    let model_path = plan.load.model.clone();
    tracing::info!(model = %model_path.display(), "loading model");
    // A bar on a terminal; in a log, a line every quarter of the layers.
    let progress = progress::for_counts(
        "Loading model layers",
        plan.progress_bar,
        4,
        |done, total, _| tracing::info!("loading model layers: {done}/{total}"),
    );
    // The CPU kernel path and worker pool are fixed for the process: check VLLM_CPU_ISA and
    // VLLM_CPU_OMP_THREADS_BIND before loading, so a bad value is one clear error.
    let isa = kernels::cpu::isa::init_from_env().map_err(|e| ServeError::Config(e.to_string()))?;
    let pool =
        kernels::cpu::pool::init_from_env().map_err(|e| ServeError::Config(e.to_string()))?;
    let loaded = loader::load(&plan.load, &progress)?;
    let mc = loaded.model.config();
    if loaded.backend == engine::device::Backend::Cpu {
        tracing::info!(
            isa = isa.name(),
            cpu_features = kernels::cpu::isa::cpu_features().join(" "),
            threads = pool.threads(),
            pinned = ?pool.bound_cpus(),
            "CPU kernels: {isa} path, {} threads",
            pool.threads()
        );
    }
    tracing::info!(
        architecture = mc.architecture.hf_name(),
        layers = mc.num_hidden_layers,
        weights_mib = loaded.model.weight_bytes() / (1 << 20),
        dtype = ?loaded.weight_dtype,
        max_model_len = loaded.max_model_len,
        "model loaded in {:.2}s",
        loaded.load_time.as_secs_f64()
    );
    let max_model_len = loaded.max_model_len;
    let generation_config = match plan.generation_config.as_str() {
        "auto" => loaded.generation_config.clone(),
        "vllm" => None,
        path => {
            let p = PathBuf::from(path);
            let file = if p.is_dir() {
                p.join("generation_config.json")
            } else {
                p
            };
            let text = std::fs::read_to_string(&file).map_err(|e| ServeError::Io {
                what: format!("--generation-config {}", file.display()),
                source: e,
            })?;
            Some(serde_json::from_str(&text).map_err(|e| {
                ServeError::Config(format!("--generation-config {}: {e}", file.display()))
            })?)
        }
    };
    let defaults = SamplingDefaults::from_generation_config(
        generation_config.as_ref(),
        plan.override_generation_config.as_ref(),
    );

    let chat_source = match &plan.chat_template {
        Some(t) if std::path::Path::new(t).is_file() => {
            Some(std::fs::read_to_string(t).map_err(|e| ServeError::Io {
                what: format!("--chat-template {t}"),
                source: e,
            })?)
        }
        Some(t) => Some(t.clone()),
        None => loaded.tokenizer.chat_template().map(str::to_string),
    };
    let tokenizer_bos = loaded.tokenizer.bos_token().map(str::to_string);
    let tokenizer_eos = loaded.tokenizer.eos_token().map(str::to_string);
    let content_format = server::content_format::resolve(
        &plan.api.chat_template_content_format,
        chat_source.as_deref(),
    );
    tracing::info!(
        "chat template content format: {} (--chat-template-content-format {})",
        content_format.as_str(),
        plan.api.chat_template_content_format
    );
    let chat_template = match chat_source {
        Some(src) => Some(
            ChatTemplate::new(&src, tokenizer_bos.as_deref(), tokenizer_eos.as_deref())
                .map_err(|e| ServeError::Config(format!("chat template: {e}")))?,
        ),
        None => None,
    };

    let mut ec = plan.engine_config(max_model_len);
    let rf = &plan.runner;
    ec.pooling = server::pooling::engine_setup(
        &rf.runner,
        &rf.convert,
        rf.task.as_deref(),
        rf.override_pooler_config.as_ref(),
        loaded.classifier.is_some(),
        &model_path,
    )
    .map_err(ServeError::Config)?;
    let cache_info = CacheConfigInfo {
        block_size: ec.block_size,
        num_gpu_blocks_override: cfg.cache.num_gpu_blocks_override,
        enable_prefix_caching: ec.enable_prefix_caching,
        prefix_caching_hash_algo: cfg.cache.prefix_caching_hash_algo.clone(),
        gpu_memory_utilization: cfg.cache.gpu_memory_utilization,
        cache_dtype: cfg.cache.kv_cache_dtype.clone(),
        swap_space: cfg.cache.swap_space,
        ..CacheConfigInfo::default()
    };
    let model_root = model_repo
        .clone()
        .unwrap_or_else(|| model_path.display().to_string());
    let engine = LlmEngine::new(loaded, ec)?;
    let tokenizer = engine.tokenizer().clone();
    let pooling = engine
        .pooling_kind()
        .map(|kind| server::pooling::PoolingInfo {
            kind,
            labels: engine.classifier_labels(),
        });
    let grammar = grammar_compiler(&engine);
    let reasoning_gate = plan.api.reasoning_parser.and_then(|r| {
        let end = tokenizer.token_to_id(r.end_marker());
        if end.is_none() {
            tracing::warn!(
                "--reasoning-parser {}: `{}` is not one token of this tokenizer; structured outputs apply from the first generated token",
                r.name(),
                r.end_marker()
            );
        }
        end.map(|end| ReasoningGate {
            start: tokenizer.token_to_id(r.start_marker()),
            end,
        })
    });
    let num_blocks = engine.stats().num_blocks;
    let actor = engine_options::from_env(|k| std::env::var(k).ok(), env.server_dev_mode)?;
    let handle = EngineHandle::spawn_with(engine, actor);

    let model_names = if !plan.served_model_names.is_empty() {
        plan.served_model_names.clone()
    } else if let Some(repo) = model_repo {
        // vLLM serves a Hub model under its repo id.
        vec![repo]
    } else {
        vec![model_path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| model_root.clone())]
    };
    let metrics = Metrics::new(
        &model_names[0],
        max_model_len,
        CacheConfigInfo {
            num_gpu_blocks: num_blocks,
            ..cache_info
        },
    );
    let metrics = Arc::new(metrics.with_hidden_metrics(plan.show_hidden_metrics));
    Ok(Arc::new(AppState {
        engine: handle,
        tokenizer,
        chat_template,
        content_format,
        server_info: server_info(cfg),
        model_names,
        model_root,
        max_model_len,
        defaults,
        opts: plan.api,
        metrics,
        started: Instant::now(),
        server_load: AtomicI64::new(0),
        grammar,
        reasoning_gate,
        pooling,
    }))
}

/// The structured-output compiler (a token trie over the vocabulary); a tokenizer llguidance
/// cannot read leaves the server up, with constrained requests refused and the reason logged.
fn grammar_compiler(engine: &LlmEngine) -> Result<Arc<GrammarCompiler>, String> {
    let started = Instant::now();
    match engine.grammar_compiler() {
        Ok(c) => {
            tracing::info!(
                "structured outputs: guidance backend (llguidance) ready in {:.2}s",
                started.elapsed().as_secs_f64()
            );
            Ok(Arc::new(c))
        }
        Err(e) => {
            tracing::warn!(
                "{e}; requests with structured outputs or forced tool calls will be refused"
            );
            Err(e.to_string())
        }
    }
}

/// `GET /server_info` (dev mode): the effective configuration, secrets replaced.
fn server_info(cfg: &ServeConfig) -> serde_json::Value {
    let mut config = serde_json::to_value(cfg).unwrap_or_default();
    for secret in ["api_key", "hf_token"] {
        if let Some(v) = config
            .get_mut(secret)
            .filter(|v| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()))
        {
            *v = serde_json::Value::String("<redacted>".into());
        }
    }
    serde_json::json!({"vllm_config": config, "version": env!("CARGO_PKG_VERSION")})
}

/// One engine report into the metrics (the only place that does it).
pub fn feed_metrics(metrics: &Metrics, report: &StatsReport) {
    let latencies = TokenLatencies {
        time_to_first_token: &report.latencies.time_to_first_token,
        inter_token: &report.latencies.inter_token,
    };
    metrics.observe_engine_with_latencies(&report.stats, &report.finished, latencies);
    for step in &report.latencies.steps {
        metrics.observe_step(step);
    }
}

/// Feeds the metrics from the engine and, unless disabled, logs vLLM's periodic stats line.
async fn poll_stats(state: Arc<AppState>, log_every: Option<Duration>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut last_log = Instant::now();
    let mut last = (0u64, 0u64, 0u64, 0u64);
    loop {
        tick.tick().await;
        let Ok(report) = state.engine.stats().await else {
            return;
        };
        feed_metrics(&state.metrics, &report);
        let stats = report.stats;
        if let Some(every) = log_every {
            let dt = last_log.elapsed();
            if dt >= every {
                let secs = dt.as_secs_f64();
                let (p, g, q, h) = (
                    stats.num_prompt_tokens,
                    stats.num_generation_tokens,
                    stats.prefix_cache_queries,
                    stats.prefix_cache_hits,
                );
                let hit_rate = if q > last.2 {
                    100.0 * (h - last.3) as f64 / (q - last.2) as f64
                } else {
                    0.0
                };
                tracing::info!(
                    "Avg prompt throughput: {:.1} tokens/s, Avg generation throughput: {:.1} tokens/s, Running: {} reqs, Waiting: {} reqs, GPU KV cache usage: {:.1}%, Prefix cache hit rate: {:.1}%",
                    (p - last.0) as f64 / secs,
                    (g - last.1) as f64 / secs,
                    stats.num_running,
                    stats.num_waiting,
                    stats.kv_cache_usage * 100.0,
                    hit_rate
                );
                last = (p, g, q, h);
                last_log = Instant::now();
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!(
        "shutting down: draining in-flight requests (up to {} s)",
        DRAIN.as_secs()
    );
}

/// How long in-flight requests may finish after SIGINT/SIGTERM.
const DRAIN: Duration = Duration::from_secs(30);

/// Watches the engine thread. Without `VLLM_KEEP_ALIVE_ON_ENGINE_DEATH` a dead engine stops the
/// server (as vLLM terminates its API server), so an orchestrator restarts it; with it, the
/// server stays up and answers 503 (inference routes and /health) until stopped.
async fn watch_engine(
    dead_reason: impl Fn() -> Option<String>,
    keep_alive: bool,
    died: tokio::sync::oneshot::Sender<String>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        if let Some(reason) = dead_reason() {
            if keep_alive {
                tracing::error!("the engine died ({reason}); VLLM_KEEP_ALIVE_ON_ENGINE_DEATH is set, so the server stays up and answers 503");
            } else {
                tracing::error!("the engine died ({reason}): shutting the server down");
                let _ = died.send(reason);
            }
            return;
        }
    }
}

/// Runs the server until SIGINT/SIGTERM (or until the engine dies, see [`watch_engine`]).
pub fn run(cfg: ServeConfig, env: EnvSettings) -> Result<(), ServeError> {
    let plan = ServePlan::new(&cfg, &env)?;
    let tls_settings = plan.tls.clone();
    // Certificates are checked before the model loads: a typo should not cost a model load.
    let tls = if tls_settings.enabled() {
        if plan.uds.is_some() {
            return Err(ServeError::Config(
                "--uds serves plain HTTP on a local socket; drop --ssl-* or --uds".into(),
            ));
        }
        Some(tokio_rustls::TlsAcceptor::from(
            tls::server_config(&tls_settings).map_err(|e| ServeError::Config(e.to_string()))?,
        ))
    } else {
        None
    };
    let state = build_state(&cfg, &env)?;
    let mut app = server::router(state.clone(), &plan.cors);
    if let Some(root) = &plan.api.root_path {
        app = server::with_root_path(app, root);
    }
    let limits = plan.limits;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| ServeError::Io {
            what: "starting the async runtime".into(),
            source: e,
        })?;
    rt.block_on(async move {
        let log_every = plan.log_stats.then_some(Duration::from_secs(10));
        tokio::spawn(poll_stats(state.clone(), log_every));
        let (died_tx, died_rx) = tokio::sync::oneshot::channel::<String>();
        let handle = state.engine.clone();
        tokio::spawn(watch_engine(
            move || handle.dead_reason(),
            env.keep_alive_on_engine_death,
            died_tx,
        ));
        let (death_tx, mut death_rx) = tokio::sync::watch::channel(None::<String>);
        let stop = async move {
            tokio::select! {
                _ = shutdown_signal() => {}
                Ok(reason) = died_rx => { let _ = death_tx.send(Some(reason)); }
            }
        };
        let listener = if let Some(path) = &plan.uds {
            let _ = std::fs::remove_file(path);
            let l = tokio::net::UnixListener::bind(path).map_err(|e| ServeError::Io {
                what: format!("binding {}", path.display()),
                source: e,
            })?;
            tracing::info!("ready: listening on unix:{}", path.display());
            Listener::Unix(l)
        } else {
            let host = plan.host.clone().unwrap_or_else(|| "0.0.0.0".into());
            let addr = format!("{host}:{}", plan.port);
            let l = tokio::net::TcpListener::bind(&addr)
                .await
                .map_err(|e| ServeError::Io {
                    what: format!("binding {addr}"),
                    source: e,
                })?;
            let shown = if host == "0.0.0.0" {
                format!("localhost:{}", plan.port)
            } else {
                addr.clone()
            };
            let scheme = if tls.is_some() { "https" } else { "http" };
            tracing::info!(
                "ready: serving {} on {scheme}://{shown}/v1",
                state.model_name()
            );
            Listener::Tcp(l)
        };
        listener::serve(listener, tls, app, limits, DRAIN, stop).await;
        let died = death_rx.borrow_and_update().clone();
        match died {
            Some(reason) => Err(ServeError::EngineDied(reason)),
            None => Ok(()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine "dies" on the third look; the watcher stops the server only without keep-alive.
    async fn outcome(keep_alive: bool) -> Option<String> {
        let looks = std::sync::atomic::AtomicUsize::new(0);
        let dead = move || {
            (looks.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 2)
                .then(|| "boom".to_string())
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        watch_engine(dead, keep_alive, tx).await;
        rx.await.ok()
    }

    #[test]
    fn engine_death_stops_the_server_unless_kept_alive() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        assert_eq!(rt.block_on(outcome(false)), Some("boom".to_string()));
        assert_eq!(rt.block_on(outcome(true)), None);
    }

    #[test]
    fn server_info_hides_the_api_key() {
        let env = EnvSettings::default();
        let cfg = ServeConfig::load(
            vec!["vllmd".into(), "--api-key".into(), "secret".into()],
            &env,
        )
        .unwrap();
        let info = server_info(&cfg);
        assert_eq!(info["vllm_config"]["api_key"], "<redacted>");
        assert!(!info.to_string().contains("secret"));
    }
}
