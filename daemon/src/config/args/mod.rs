//! [`ServeConfig`]: every flag of `vllm serve`, once. The same struct is the clap parser and the
//! serde schema of the YAML `--config` file; YAML keys are the flag ids (field names), so the two
//! cannot drift apart.
//!
//! The flags are grouped as the reference groups them, one struct per group (`cfg.frontend.port`,
//! `cfg.cache.block_size`, ...), flattened on both the clap and the serde side so that flag names
//! and YAML keys stay flat.

mod command;
mod engine;
mod features;
mod frontend;
mod model;

use std::path::PathBuf;

use clap::Parser;
use serde::{Deserialize, Serialize};

pub use command::Source;
pub(crate) use command::{flags, Flag, Kind, Origins};
pub use engine::{CacheArgs, DecodingArgs, ParallelArgs};
pub use features::{LoraArgs, MultiModalArgs, ObservabilityArgs, SchedulerArgs, VllmArgs};
pub use frontend::FrontendArgs;
pub use model::{LoadArgs, ModelArgs};

use crate::config::parse;
use command::AFTER_HELP;

/// The `vllmd` (`vllm serve`) configuration.
///
/// Build it with [`ServeConfig::load`], which applies the argv pre-pass (dotted JSON keys, `--no-x`,
/// `-O3`, `-tp 2`), the YAML file and the environment; clap's own `parse()` would skip all that.
#[derive(Debug, Clone, Parser, Serialize, Deserialize)]
#[command(
    name = "vllmd",
    version,
    about = "vllm-rs server: the vllm-rs engine behind an OpenAI-compatible HTTP API (vllm serve)",
    long_about = None,
    after_help = AFTER_HELP,
    max_term_width = 110
)]
pub struct ServeConfig {
    /// Model to serve, as `vllm serve MODEL`; wins over --model.
    #[arg(value_name = "MODEL_TAG")]
    pub model_tag: Option<PathBuf>,

    /// Read flags from this YAML file; flags on the command line win over it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Run without the API server (multi-node data parallel).
    #[arg(long)]
    pub headless: bool,

    /// Number of API server processes (short: -asc).
    #[arg(long, default_value_t = 1, value_parser = parse::positive_usize)]
    pub api_server_count: usize,

    /// Do not log engine statistics periodically.
    #[arg(long)]
    pub disable_log_stats: bool,

    /// Deprecated and without effect: prompt adapters were removed.
    #[arg(long)]
    pub enable_prompt_adapter: bool,

    /// Log each request.
    #[arg(long)]
    pub enable_log_requests: bool,

    /// Deprecated: use --enable-log-requests.
    #[arg(long, default_value_t = true)]
    pub disable_log_requests: bool,

    #[command(flatten)]
    #[serde(flatten)]
    pub frontend: FrontendArgs,

    #[command(flatten)]
    #[serde(flatten)]
    pub model_config: ModelArgs,

    #[command(flatten)]
    #[serde(flatten)]
    pub load: LoadArgs,

    #[command(flatten)]
    #[serde(flatten)]
    pub decoding: DecodingArgs,

    #[command(flatten)]
    #[serde(flatten)]
    pub parallel: ParallelArgs,

    #[command(flatten)]
    #[serde(flatten)]
    pub cache: CacheArgs,

    #[command(flatten)]
    #[serde(flatten)]
    pub multimodal: MultiModalArgs,

    #[command(flatten)]
    #[serde(flatten)]
    pub lora: LoraArgs,

    #[command(flatten)]
    #[serde(flatten)]
    pub observability: ObservabilityArgs,

    #[command(flatten)]
    #[serde(flatten)]
    pub scheduler: SchedulerArgs,

    #[command(flatten)]
    #[serde(flatten)]
    pub vllm: VllmArgs,

    /// Device to run on (a vllm-rs flag): auto picks CUDA when available, else the CPU.
    #[arg(long, default_value = "auto", value_parser = ["auto", "cpu", "cuda"], help_heading = "DeviceConfig")]
    pub device: String,

    #[arg(skip)]
    #[serde(skip)]
    pub(crate) origins: Origins,
}
