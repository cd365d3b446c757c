//! The `VLLM_*` environment variables that concern the server.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::config::env_fate::{env_warnings, ATTENTION_BACKENDS};
use crate::config::error::ConfigError;

/// Log level of `VLLM_LOGGING_LEVEL` (Python's names; `TRACE` is a vllm-rs addition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

impl LogLevel {
    /// The matching `tracing` filter directive.
    pub fn as_filter(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warning => "warn",
            LogLevel::Error | LogLevel::Critical => "error",
        }
    }
}

/// Settings read from the environment.
///
/// vllm-rs never collects nor sends usage statistics, so the variables that opt out of them in
/// vLLM (`VLLM_NO_USAGE_STATS`, `VLLM_DO_NOT_TRACK`, `DO_NOT_TRACK`) have nothing to turn off
/// and are not read.
///
/// Boolean variables take 1/0, true/false, yes/no or on/off (any case); unlike vLLM, where any
/// non-empty `VLLM_KEEP_ALIVE_ON_ENGINE_DEATH` (even "0") counts as true, "0" means false here.
/// Empty variables count as unset. Anything else is an error that names the variable.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvSettings {
    /// `VLLM_API_KEY`: the API key when `--api-key` is not given.
    pub api_key: Option<String>,
    /// `VLLM_CACHE_ROOT` (default `$XDG_CACHE_HOME/vllm`, else `~/.cache/vllm`).
    pub cache_root: PathBuf,
    /// `VLLM_CONFIG_ROOT` (default `$XDG_CONFIG_HOME/vllm`, else `~/.config/vllm`).
    pub config_root: PathBuf,
    /// `VLLM_CPU_KVCACHE_SPACE`: KV cache size on the CPU in GiB (default 4; 0 also means 4).
    pub cpu_kvcache_space_gib: u64,
    /// `VLLM_ENGINE_ITERATION_TIMEOUT_S`: longest engine step before it counts as hung (default 60).
    pub engine_iteration_timeout_s: u64,
    /// `VLLM_KEEP_ALIVE_ON_ENGINE_DEATH`: keep serving (errors) after the engine died.
    pub keep_alive_on_engine_death: bool,
    /// `VLLM_ALLOW_LONG_MAX_MODEL_LEN`: allow --max-model-len above the model's own limit.
    pub allow_long_max_model_len: bool,
    /// `VLLM_SERVER_DEV_MODE`: serve the debugging endpoints.
    pub server_dev_mode: bool,
    /// `VLLM_LOGGING_LEVEL` (default INFO).
    pub logging_level: LogLevel,
    /// `VLLM_CONFIGURE_LOGGING` (default 1): 0 leaves logging to the embedding program.
    pub configure_logging: bool,
    /// `VLLM_LOGGING_CONFIG_PATH`: logging configuration file.
    pub logging_config_path: Option<PathBuf>,
    /// `VLLM_LOGGING_PREFIX`: prepended to every log line.
    pub logging_prefix: String,
    /// `VLLM_HTTP_TIMEOUT_KEEP_ALIVE`: seconds an idle HTTP connection is kept open (default 5).
    pub http_timeout_keep_alive_s: u64,
    /// `VLLM_NO_DEPRECATION_WARNING`: no warnings for deprecated flags.
    pub no_deprecation_warning: bool,
    /// `VLLM_ATTENTION_BACKEND`, checked against vLLM's backend names (no effect here).
    pub attention_backend: Option<String>,
    /// The names of the `VLLM_*` variables set (non-empty), sorted; see [`EnvSettings::warnings`].
    pub vllm_vars: Vec<String>,
}

impl Default for EnvSettings {
    /// The settings of an empty environment (no HOME: relative `.cache/vllm`, `.config/vllm`).
    fn default() -> Self {
        EnvSettings {
            api_key: None,
            cache_root: PathBuf::from(".cache/vllm"),
            config_root: PathBuf::from(".config/vllm"),
            cpu_kvcache_space_gib: 4,
            engine_iteration_timeout_s: 60,
            keep_alive_on_engine_death: false,
            allow_long_max_model_len: false,
            server_dev_mode: false,
            logging_level: LogLevel::Info,
            configure_logging: true,
            logging_config_path: None,
            logging_prefix: String::new(),
            http_timeout_keep_alive_s: 5,
            no_deprecation_warning: false,
            attention_backend: None,
            vllm_vars: Vec::new(),
        }
    }
}

const READ: &[&str] = &[
    "VLLM_API_KEY",
    "VLLM_CACHE_ROOT",
    "VLLM_CONFIG_ROOT",
    "VLLM_CPU_KVCACHE_SPACE",
    "VLLM_ENGINE_ITERATION_TIMEOUT_S",
    "VLLM_KEEP_ALIVE_ON_ENGINE_DEATH",
    "VLLM_ALLOW_LONG_MAX_MODEL_LEN",
    "VLLM_SERVER_DEV_MODE",
    "VLLM_LOGGING_LEVEL",
    "VLLM_CONFIGURE_LOGGING",
    "VLLM_LOGGING_CONFIG_PATH",
    "VLLM_LOGGING_PREFIX",
    "VLLM_HTTP_TIMEOUT_KEEP_ALIVE",
    "VLLM_NO_DEPRECATION_WARNING",
    "VLLM_ATTENTION_BACKEND",
    "VLLM_PORT",
    "HOME",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
];

fn invalid(var: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Env {
        var: var.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

impl EnvSettings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut map = HashMap::new();
        let vllm = std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .filter(|k| k.starts_with("VLLM_"));
        let names: Vec<String> = READ.iter().map(|s| s.to_string()).chain(vllm).collect();
        for name in &names {
            match std::env::var(name) {
                Ok(v) => {
                    map.insert(name.clone(), v);
                }
                Err(std::env::VarError::NotPresent) => {}
                Err(std::env::VarError::NotUnicode(v)) => {
                    return Err(invalid(name, &v.to_string_lossy(), "not valid UTF-8"));
                }
            }
        }
        Self::from_map(&map)
    }

    /// Reads the variables from `map` (for tests and embedding); `HOME`, `XDG_CACHE_HOME` and
    /// `XDG_CONFIG_HOME` are taken from it too.
    pub fn from_map(map: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |name: &str| map.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        let home = get("HOME").map(PathBuf::from);
        let expand = |raw: &str| -> PathBuf {
            match (raw.strip_prefix('~'), &home) {
                (Some(""), Some(h)) => h.clone(),
                (Some(rest), Some(h)) if rest.starts_with('/') => h.join(&rest[1..]),
                // Without HOME, `~` is taken as the current directory rather than a literal `~`.
                (Some(""), None) => PathBuf::from("."),
                (Some(rest), None) if rest.starts_with('/') => PathBuf::from(&rest[1..]),
                _ => PathBuf::from(raw),
            }
        };
        let root = |var: &str, xdg: &str, fallback: &str| match (get(var), get(xdg)) {
            (Some(v), _) => expand(v),
            (None, Some(x)) => expand(x).join("vllm"),
            (None, None) => expand(fallback).join("vllm"),
        };
        let flag = |name: &str, default: bool| -> Result<bool, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(v) => match v.to_ascii_lowercase().as_str() {
                    "1" | "true" | "yes" | "on" => Ok(true),
                    "0" | "false" | "no" | "off" => Ok(false),
                    _ => Err(invalid(
                        name,
                        v,
                        "expected 1/0, true/false, yes/no or on/off",
                    )),
                },
            }
        };
        let count = |name: &str, default: u64| -> Result<u64, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u64>()
                    .map_err(|_| invalid(name, v, "expected a whole number")),
            }
        };

        let kv_space = match count("VLLM_CPU_KVCACHE_SPACE", 4)? {
            0 => 4,
            n => n,
        };
        if let Some(port) = get("VLLM_PORT") {
            if port.contains("://") {
                return Err(invalid("VLLM_PORT", port, "looks like a URI; a Kubernetes service named `vllm` sets VLLM_PORT this way: rename the service"));
            }
            port.parse::<u16>()
                .map_err(|_| invalid("VLLM_PORT", port, "expected a port number"))?;
        }
        let attention_backend = match get("VLLM_ATTENTION_BACKEND") {
            Some(b) if !ATTENTION_BACKENDS.contains(&b) => {
                return Err(invalid(
                    "VLLM_ATTENTION_BACKEND",
                    b,
                    format!(
                        "unknown attention backend; vLLM's are {}",
                        ATTENTION_BACKENDS.join(", ")
                    ),
                ));
            }
            other => other.map(str::to_string),
        };
        let mut vllm_vars: Vec<String> = map
            .iter()
            .filter(|(k, v)| k.starts_with("VLLM_") && !v.trim().is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        vllm_vars.sort();
        let timeout = count("VLLM_ENGINE_ITERATION_TIMEOUT_S", 60)?;
        if timeout == 0 {
            return Err(invalid(
                "VLLM_ENGINE_ITERATION_TIMEOUT_S",
                "0",
                "must be at least 1 second",
            ));
        }
        let logging_level = match get("VLLM_LOGGING_LEVEL") {
            None => LogLevel::Info,
            Some(v) => match v.to_ascii_uppercase().as_str() {
                "TRACE" => LogLevel::Trace,
                "DEBUG" => LogLevel::Debug,
                "INFO" => LogLevel::Info,
                "WARNING" | "WARN" => LogLevel::Warning,
                "ERROR" => LogLevel::Error,
                "CRITICAL" | "FATAL" => LogLevel::Critical,
                _ => {
                    return Err(invalid(
                        "VLLM_LOGGING_LEVEL",
                        v,
                        "expected DEBUG, INFO, WARNING, ERROR or CRITICAL",
                    ))
                }
            },
        };
        Ok(EnvSettings {
            api_key: get("VLLM_API_KEY").map(str::to_string),
            cache_root: root("VLLM_CACHE_ROOT", "XDG_CACHE_HOME", "~/.cache"),
            config_root: root("VLLM_CONFIG_ROOT", "XDG_CONFIG_HOME", "~/.config"),
            cpu_kvcache_space_gib: kv_space,
            engine_iteration_timeout_s: timeout,
            keep_alive_on_engine_death: flag("VLLM_KEEP_ALIVE_ON_ENGINE_DEATH", false)?,
            allow_long_max_model_len: flag("VLLM_ALLOW_LONG_MAX_MODEL_LEN", false)?,
            server_dev_mode: flag("VLLM_SERVER_DEV_MODE", false)?,
            logging_level,
            configure_logging: flag("VLLM_CONFIGURE_LOGGING", true)?,
            logging_config_path: get("VLLM_LOGGING_CONFIG_PATH").map(expand),
            // The prefix is used verbatim, spaces included.
            logging_prefix: map.get("VLLM_LOGGING_PREFIX").cloned().unwrap_or_default(),
            http_timeout_keep_alive_s: count("VLLM_HTTP_TIMEOUT_KEEP_ALIVE", 5)?,
            no_deprecation_warning: flag("VLLM_NO_DEPRECATION_WARNING", false)?,
            attention_backend,
            vllm_vars,
        })
    }

    /// The warning lines for the `VLLM_*` variables set: those without effect here, and those
    /// nobody knows (see [`crate::config::ENV_VARS`]).
    pub fn warnings(&self) -> Vec<String> {
        env_warnings(self.vllm_vars.iter().map(String::as_str))
    }

    /// `VLLM_CPU_KVCACHE_SPACE` in bytes.
    pub fn cpu_kvcache_space_bytes(&self) -> u64 {
        self.cpu_kvcache_space_gib.saturating_mul(1 << 30)
    }
}
