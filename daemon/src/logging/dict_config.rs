//! `VLLM_LOGGING_CONFIG_PATH`: a Python `logging.config.dictConfig` file (JSON), as vLLM takes
//! it. The parts that map onto `tracing` are honoured: the root level, per-logger levels (as
//! target filters) and the file of a file handler (else stdout/stderr of a stream handler).
//! Everything else (formatters, filters, handler levels, propagation, ...) has no equivalent
//! and is listed in [`DictConfig::ignored`] so start-up can say so.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum DictConfigError {
    #[error("VLLM_LOGGING_CONFIG_PATH {0}: cannot read it: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("VLLM_LOGGING_CONFIG_PATH {0}: not valid JSON: {1}")]
    Json(PathBuf, serde_json::Error),
    #[error("VLLM_LOGGING_CONFIG_PATH {0}: {1}")]
    Invalid(PathBuf, String),
}

/// Where log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    Stderr,
    Stdout,
    File(PathBuf),
}

/// What of a dictConfig file `tracing` can honour.
#[derive(Debug, Clone, PartialEq)]
pub struct DictConfig {
    /// The root logger's level as a `tracing` level name, if set.
    pub root_level: Option<&'static str>,
    /// `target=level` filter directives from `loggers`.
    pub directives: Vec<String>,
    pub sink: Sink,
    /// Human-readable notes on what was not honoured.
    pub ignored: Vec<String>,
}

/// Our crates: what Python's `vllm` logger (and its children) stands for here.
const OUR_TARGETS: &[&str] = &[
    "daemon",
    "engine",
    "kernels",
    "cli",
    "tui",
    "bench",
    "collect_env",
];

/// Python level (name or number) to a `tracing` level name.
fn level(v: &Value) -> Option<&'static str> {
    let name = match v {
        Value::String(s) => s.to_ascii_uppercase(),
        Value::Number(n) => match n.as_u64()? {
            0 => "NOTSET".into(),
            1..=10 => "DEBUG".into(),
            11..=20 => "INFO".into(),
            21..=30 => "WARNING".into(),
            _ => "ERROR".into(),
        },
        _ => return None,
    };
    Some(match name.as_str() {
        "NOTSET" | "TRACE" => "trace",
        "DEBUG" => "debug",
        "INFO" => "info",
        "WARNING" | "WARN" => "warn",
        "ERROR" | "CRITICAL" | "FATAL" => "error",
        _ => return None,
    })
}

/// Python logger names to `tracing` targets (`vllm.x` → our crates; `a.b` → `a::b`).
fn targets(logger: &str) -> Option<Vec<String>> {
    if logger == "vllm" || logger.starts_with("vllm.") {
        return Some(OUR_TARGETS.iter().map(|t| t.to_string()).collect());
    }
    // The HTTP layer logs under uvicorn's logger names (`uvicorn.access`, `uvicorn.error`).
    if logger == "uvicorn" || logger.starts_with("uvicorn.") {
        return Some(vec![logger.to_string()]);
    }
    if logger.is_empty()
        || !logger
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == ':')
    {
        return None;
    }
    Some(vec![logger.replace('.', "::")])
}

impl DictConfig {
    pub fn load(path: &Path) -> Result<DictConfig, DictConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| DictConfigError::Read(path.to_path_buf(), e))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| DictConfigError::Json(path.to_path_buf(), e))?;
        Self::from_value(&value).map_err(|e| DictConfigError::Invalid(path.to_path_buf(), e))
    }

    pub fn from_value(v: &Value) -> Result<DictConfig, String> {
        let obj = v
            .as_object()
            .ok_or("the configuration must be a JSON object (a dictConfig dictionary)")?;
        let empty = Map::new();
        let section = |key: &str| -> Result<&Map<String, Value>, String> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(&empty),
                Some(Value::Object(m)) => Ok(m),
                Some(_) => Err(format!("`{key}` must be an object")),
            }
        };
        let mut ignored = Vec::new();
        for key in obj.keys() {
            if !matches!(key.as_str(), "version" | "root" | "loggers" | "handlers") {
                ignored.push(format!("`{key}`"));
            }
        }
        let handlers = section("handlers")?;
        let loggers = section("loggers")?;
        let root = section("root")?;

        let root_level = match root.get("level") {
            None => None,
            Some(l) => {
                Some(level(l).ok_or_else(|| format!("root.level {l} is not a logging level"))?)
            }
        };
        let mut used_handlers: Vec<&'_ str> = Vec::new();
        fn take_handlers<'a>(
            owner: &str,
            entry: &'a Map<String, Value>,
            used: &mut Vec<&'a str>,
            ignored: &mut Vec<String>,
        ) {
            for h in entry
                .get("handlers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                match h.as_str() {
                    Some(name) if !used.contains(&name) => used.push(name),
                    Some(_) => {}
                    None => ignored.push(format!("{owner}.handlers entry {h}")),
                }
            }
        }
        take_handlers("root", root, &mut used_handlers, &mut ignored);
        let mut directives = Vec::new();
        for (name, entry) in loggers {
            let entry = entry
                .as_object()
                .ok_or_else(|| format!("loggers.{name} must be an object"))?;
            take_handlers(
                &format!("loggers.{name}"),
                entry,
                &mut used_handlers,
                &mut ignored,
            );
            let Some(l) = entry.get("level") else {
                continue;
            };
            let l = level(l)
                .ok_or_else(|| format!("loggers.{name}.level {l} is not a logging level"))?;
            match targets(name) {
                Some(ts) => directives.extend(ts.into_iter().map(|t| format!("{t}={l}"))),
                None => ignored.push(format!("logger `{name}` (no such log target here)")),
            }
            for key in entry
                .keys()
                .filter(|k| !matches!(k.as_str(), "level" | "handlers"))
            {
                ignored.push(format!("loggers.{name}.{key}"));
            }
        }
        for key in root
            .keys()
            .filter(|k| !matches!(k.as_str(), "level" | "handlers"))
        {
            ignored.push(format!("root.{key}"));
        }

        // One sink for everything: the first file handler in use, else the first stream.
        let mut sink = None;
        for name in &used_handlers {
            let h = handlers
                .get(*name)
                .and_then(Value::as_object)
                .ok_or_else(|| format!("handler `{name}` is used but not defined in `handlers`"))?;
            let chosen = if let Some(file) = h.get("filename").and_then(Value::as_str) {
                Some(Sink::File(PathBuf::from(file)))
            } else {
                match h.get("stream").and_then(Value::as_str) {
                    Some("ext://sys.stdout") => Some(Sink::Stdout),
                    Some("ext://sys.stderr") | None => Some(Sink::Stderr),
                    Some(other) => {
                        ignored.push(format!("handlers.{name}.stream {other}"));
                        None
                    }
                }
            };
            match (&sink, chosen) {
                (None, Some(s)) => sink = Some(s),
                (Some(Sink::File(_)), _) | (_, None) => {
                    ignored.push(format!("handler `{name}` (one output only)"))
                }
                (Some(_), Some(Sink::File(f))) => {
                    ignored.push("the stream handler (a file handler takes precedence)".into());
                    sink = Some(Sink::File(f));
                }
                (Some(_), Some(_)) => ignored.push(format!("handler `{name}` (one output only)")),
            }
            for key in h
                .keys()
                .filter(|k| !matches!(k.as_str(), "class" | "filename" | "stream"))
            {
                ignored.push(format!("handlers.{name}.{key}"));
            }
        }
        for name in handlers
            .keys()
            .filter(|n| !used_handlers.contains(&n.as_str()))
        {
            ignored.push(format!(
                "handler `{name}` (not used by root nor any logger)"
            ));
        }
        Ok(DictConfig {
            root_level,
            directives,
            sink: sink.unwrap_or(Sink::Stderr),
            ignored,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn levels_targets_and_file_are_honoured() {
        let c = DictConfig::from_value(&json!({
            "version": 1,
            "disable_existing_loggers": false,
            "formatters": {"f": {"format": "%(message)s"}},
            "handlers": {"file": {"class": "logging.FileHandler", "filename": "out.log", "formatter": "f"}, "unused": {"class": "logging.StreamHandler"}},
            "loggers": {"vllm": {"level": "DEBUG", "handlers": ["file"], "propagate": false}, "uvicorn.access": {"level": "ERROR"}, "hyper": {"level": 40}},
            "root": {"level": "WARNING"}
        }))
        .unwrap();
        assert_eq!(c.root_level, Some("warn"));
        assert!(
            c.directives.contains(&"daemon=debug".to_string())
                && c.directives.contains(&"engine=debug".to_string())
        );
        assert!(c.directives.contains(&"hyper=error".to_string()));
        assert!(c.directives.contains(&"uvicorn.access=error".to_string()));
        assert_eq!(c.sink, Sink::File("out.log".into()));
        for part in [
            "`formatters`",
            "`disable_existing_loggers`",
            "loggers.vllm.propagate",
            "handlers.file.formatter",
            "handler `unused`",
        ] {
            assert!(
                c.ignored.iter().any(|i| i.contains(part)),
                "{part} not in {:?}",
                c.ignored
            );
        }
    }

    #[test]
    fn bad_configs_are_errors() {
        assert!(DictConfig::from_value(&json!([1])).is_err());
        assert!(DictConfig::from_value(&json!({"root": {"level": "LOUD"}})).is_err());
        assert!(DictConfig::from_value(&json!({"root": {"handlers": ["nope"]}})).is_err());
        let c = DictConfig::from_value(&json!({"handlers": {"o": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout"}}, "root": {"handlers": ["o"]}})).unwrap();
        assert_eq!(c.sink, Sink::Stdout);
    }
}
