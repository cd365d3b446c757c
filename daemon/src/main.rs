//! `vllmd`: serve a model behind the OpenAI-compatible API (`vllm serve`, in one binary).

use daemon::config::{EnvSettings, ServeConfig};

fn init_logging(env: &EnvSettings) {
    if !env.configure_logging {
        return;
    }
    let filter = tracing_subscriber::EnvFilter::try_new(format!("{},tokenizers=warn", env.logging_level.as_filter()))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let prefix = env.logging_prefix.clone();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    if prefix.is_empty() {
        builder.init();
    } else {
        builder.event_format(PrefixedFormat { prefix, inner: tracing_subscriber::fmt::format().with_target(false) }).init();
    }
}

/// `VLLM_LOGGING_PREFIX` in front of every line.
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

fn main() {
    let env = match EnvSettings::from_env() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let cfg = match ServeConfig::load(std::env::args().collect(), &env) {
        Ok(c) => c,
        Err(e) => {
            // clap's own help/version output arrives here too, as an error that prints itself.
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    init_logging(&env);
    if let Err(e) = daemon::serve::run(cfg, env) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
