//! The `vllmd` configuration, shared by the server and the TUI: every `vllm serve` flag
//! ([`ServeConfig`]), the YAML `--config` file, JSON-valued flags with dotted keys, the `VLLM_*`
//! environment ([`EnvSettings`]), and the check for features vllm-rs does not support yet.
//!
//! Typical use:
//! ```no_run
//! use daemon::config::{EnvSettings, ServeConfig};
//! let env = EnvSettings::from_env().unwrap_or_else(|e| e.exit());
//! let cfg = ServeConfig::load(std::env::args().collect(), &env).unwrap_or_else(|e| e.exit());
//! cfg.check_supported().unwrap_or_else(|e| e.exit());
//! ```

mod args;
mod env;
mod env_fate;
mod error;
mod fate;
mod json_args;
mod load;
mod parse;
mod size;
mod suggest;
mod yaml;

pub use args::{
    CacheArgs, DecodingArgs, FrontendArgs, LoadArgs, LoraArgs, ModelArgs, MultiModalArgs,
    ObservabilityArgs, ParallelArgs, SchedulerArgs, ServeConfig, Source, VllmArgs,
};
pub use env::{EnvSettings, LogLevel};
pub use env_fate::{env_fate, EnvFate, ATTENTION_BACKENDS, ENV_VARS};
pub use error::{ConfigError, ConfigProblem};
pub use fate::{fate, Fate, FATES};
pub use load::validate_yaml;
pub use size::parse_human_len;
