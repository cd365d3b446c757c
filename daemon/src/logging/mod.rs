//! Logging as `vllmd` sets it up (`VLLM_LOGGING_LEVEL`, `VLLM_LOGGING_PREFIX`,
//! `VLLM_CONFIGURE_LOGGING`); shared so `vllm serve` and `vllm run-batch` log exactly alike.

use crate::config::EnvSettings;

/// `level` overrides `VLLM_LOGGING_LEVEL` (run-batch is quiet unless asked otherwise).
pub fn init(env: &EnvSettings, level: Option<&str>) {
    if !env.configure_logging {
        return;
    }
    let level = level.unwrap_or(env.logging_level.as_filter());
    let filter = tracing_subscriber::EnvFilter::try_new(format!("{level},tokenizers=warn")).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let prefix = env.logging_prefix.clone();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    if prefix.is_empty() {
        builder.init();
    } else {
        builder.event_format(PrefixedFormat { prefix, inner: tracing_subscriber::fmt::format().with_target(false) }).init();
    }
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
    fn format_event(&self, ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>, mut writer: tracing_subscriber::fmt::format::Writer<'_>, event: &tracing::Event<'_>) -> std::fmt::Result {
        write!(writer, "{}", self.prefix)?;
        self.inner.format_event(ctx, writer, event)
    }
}
