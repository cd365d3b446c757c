//! `vllm tui`: a keyboard-only terminal app to use next to a running `vllmd` — chat with the
//! served model, a live metrics dashboard, the `--config` file as `vllmd` reads it, and server
//! status. Also home of `vllm config validate FILE` ([`validate_config_file`]).

pub mod app;
pub mod client;
pub mod config_check;
pub mod metrics_math;
pub mod poll;
pub mod ui;

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use crossterm::event::{self, Event, KeyEventKind};
use tokio::task::JoinHandle;

use app::{Action, App};
use client::Endpoint;
use config_check::ConfigState;

pub use config_check::validate_config_file;

#[derive(Debug, Clone, clap::Args)]
pub struct TuiArgs {
    /// URL of the server, with or without the final /v1 of its OpenAI API.
    #[arg(long, default_value = "http://localhost:8000/v1")]
    pub url: String,
    /// API key (default: $OPENAI_API_KEY, then $VLLM_API_KEY).
    #[arg(long)]
    pub api_key: Option<String>,
    /// A `vllmd` YAML config file to check and show on the Config screen.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Seconds between scrapes of /metrics, /health and /v1/models.
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    pub interval: f64,
}

pub fn run(args: TuiArgs) -> Result<()> {
    if !(args.interval.is_finite() && args.interval >= 0.1) {
        bail!(
            "--interval must be at least 0.1 seconds (got {})",
            args.interval
        );
    }
    let key = args
        .api_key
        .clone()
        .or_else(|| std::env::var("OPENAI_API_KEY").ok())
        .or_else(|| std::env::var("VLLM_API_KEY").ok())
        .filter(|k| !k.is_empty());
    let ep = Endpoint::parse(&daemon::url::api_base(&args.url), key)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    let (tx, rx) = mpsc::channel();
    let clock = Instant::now();
    poll::spawn_poller(
        &rt,
        ep.clone(),
        Duration::from_secs_f64(args.interval),
        clock,
        tx.clone(),
    );
    let mut app = App::new(
        &args.url,
        args.interval,
        ConfigState::load(args.config.as_deref()),
    );

    // Installs a panic hook that restores the terminal before the panic message is printed.
    let mut terminal = match ratatui::try_init() {
        Ok(t) => t,
        Err(e) => {
            // Raw mode may already be on when entering the alternate screen failed.
            let _ = ratatui::try_restore();
            return Err(e).context("set up the terminal (vllm tui needs an interactive terminal)");
        }
    };
    let mut chat: Option<JoinHandle<()>> = None;
    let result = (|| -> Result<()> {
        loop {
            app.now = clock.elapsed().as_secs_f64();
            while let Ok(update) = rx.try_recv() {
                app.apply(update);
            }
            terminal.draw(|f| ui::draw(f, &app))?;
            if !event::poll(Duration::from_millis(100))? {
                continue;
            }
            // Resize needs nothing: the next draw uses the new size.
            let Event::Key(key) = event::read()? else {
                continue;
            };
            if key.kind != KeyEventKind::Press {
                continue;
            }
            match app.on_key(key) {
                Action::None => {}
                Action::Quit => return Ok(()),
                Action::SendChat { id, body } => {
                    chat = Some(poll::spawn_chat(
                        &rt,
                        ep.clone(),
                        id,
                        body,
                        clock,
                        tx.clone(),
                    ));
                }
                Action::StopChat => {
                    if let Some(h) = chat.take() {
                        h.abort();
                    }
                }
                Action::ReloadConfig => {
                    app.config = ConfigState::load(args.config.as_deref());
                }
            }
        }
    })();
    ratatui::try_restore().context("restore the terminal")?;
    rt.shutdown_background();
    result
}
