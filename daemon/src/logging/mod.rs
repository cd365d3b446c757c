//! Logging as `vllmd` sets it up (`VLLM_LOGGING_LEVEL`, `VLLM_LOGGING_PREFIX`,
//! `VLLM_CONFIGURE_LOGGING`, `VLLM_LOGGING_CONFIG_PATH`); shared so `vllm serve` and
//! `vllm run-batch` log exactly alike.

pub mod dict_config;

use std::io::IsTerminal;
use std::sync::Mutex;

use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::config::EnvSettings;
use dict_config::{DictConfig, DictConfigError, Sink};

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("VLLM_CONFIGURE_LOGGING is 0 but VLLM_LOGGING_CONFIG_PATH is set; unset one of them")]
    ConfigWithoutConfigure,
    #[error(transparent)]
    Config(#[from] DictConfigError),
    #[error("VLLM_LOGGING_CONFIG_PATH: cannot open the log file {0}: {1}")]
    File(std::path::PathBuf, std::io::Error),
}

/// Like [`try_init`]; a bad logging configuration is a start-up error: printed, exit code 2.
pub fn init(env: &EnvSettings, level: Option<&str>) {
    init_with(env, level, &[]);
}

/// The server's logging: [`init`] plus the HTTP layer's own level (`--uvicorn-log-level`).
pub fn init_server(env: &EnvSettings, cfg: &crate::config::ServeConfig) {
    init_with(
        env,
        None,
        &[crate::serve::plan::http_log_directive(
            &cfg.frontend.uvicorn_log_level,
        )],
    );
}

fn init_with(env: &EnvSettings, level: Option<&str>, extra: &[String]) {
    if let Err(e) = try_init_with(env, level, extra) {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

/// `level` overrides `VLLM_LOGGING_LEVEL` (run-batch is quiet unless asked otherwise); a
/// `VLLM_LOGGING_CONFIG_PATH` file's root level overrides both, as a dictConfig replaces
/// vLLM's default logging set-up.
pub fn try_init(env: &EnvSettings, level: Option<&str>) -> Result<(), LoggingError> {
    try_init_with(env, level, &[])
}

/// [`try_init`] with more `tracing` filter directives (for other loggers' own levels).
pub fn try_init_with(
    env: &EnvSettings,
    level: Option<&str>,
    extra: &[String],
) -> Result<(), LoggingError> {
    if !env.configure_logging {
        if env.logging_config_path.is_some() {
            return Err(LoggingError::ConfigWithoutConfigure);
        }
        return Ok(());
    }
    let dict = env
        .logging_config_path
        .as_deref()
        .map(DictConfig::load)
        .transpose()?;
    let level = dict
        .as_ref()
        .and_then(|d| d.root_level)
        .or(level)
        .unwrap_or(env.logging_level.as_filter());
    let mut directives = format!("{level},tokenizers=warn");
    for d in extra.iter().chain(dict.iter().flat_map(|d| &d.directives)) {
        directives.push(',');
        directives.push_str(d);
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, ansi) = match dict.as_ref().map(|d| &d.sink) {
        // Colours only for a person at a terminal: escape codes in a redirected log break grep.
        None | Some(Sink::Stderr) => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        ),
        Some(Sink::Stdout) => (
            BoxMakeWriter::new(std::io::stdout),
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        ),
        Some(Sink::File(path)) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| LoggingError::File(path.clone(), e))?;
            (BoxMakeWriter::new(Mutex::new(file)), false)
        }
    };
    let prefix = env.logging_prefix.clone();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .with_target(false);
    if prefix.is_empty() {
        builder.init();
    } else {
        builder
            .event_format(PrefixedFormat {
                prefix,
                inner: tracing_subscriber::fmt::format().with_target(false),
            })
            .init();
    }
    if let (Some(d), Some(path)) = (&dict, &env.logging_config_path) {
        tracing::info!("logging configured from {}", path.display());
        if !d.ignored.is_empty() {
            tracing::warn!(
                "VLLM_LOGGING_CONFIG_PATH {}: no equivalent here, ignored: {}",
                path.display(),
                d.ignored.join(", ")
            );
        }
    }
    Ok(())
}

struct PrefixedFormat<F> {
    prefix: String,
    inner: F,
}

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for PrefixedFormat<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "{}", self.prefix)?;
        self.inner.format_event(ctx, writer, event)
    }
}
