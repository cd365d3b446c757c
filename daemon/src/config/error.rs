//! Errors of configuration loading, with the flag, YAML line and suggestion they concern.

use std::fmt;
use std::path::PathBuf;

/// One thing wrong in a YAML config file (or in the settings it leads to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// 1-based line of the key in the file, where it could be found.
    pub line: Option<usize>,
    /// The key as written in the file.
    pub key: Option<String>,
    pub message: String,
    /// The flag name the key probably meant, spelled in the key's style.
    pub suggestion: Option<String>,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(s) = &self.suggestion {
            write!(f, " (did you mean `{s}`?)")?;
        }
        Ok(())
    }
}

fn yaml_report(path: &Option<PathBuf>, problems: &[ConfigProblem]) -> String {
    let prefix = path
        .as_ref()
        .map(|p| format!("{}: ", p.display()))
        .unwrap_or_default();
    let lines: Vec<String> = problems.iter().map(|p| format!("{prefix}{p}")).collect();
    lines.join("\n")
}

fn unsupported_report(flags: &[String]) -> String {
    let lines: Vec<String> = flags
        .iter()
        .map(|f| format!("not supported yet: {f}"))
        .collect();
    lines.join("\n")
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A command-line error rendered by clap (with its did-you-mean tip), or a request for
    /// `--help`/`--version`: `exit()` prints those on stdout and exits 0.
    #[error("{0}")]
    Cli(clap::Error),
    /// A JSON flag given in a form that cannot be folded into one value.
    #[error("{flag}: {message}")]
    JsonArg { flag: String, message: String },
    #[error("cannot read config file {}: {source}", path.display())]
    ReadConfig {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Problems in a YAML config file, each with its line where known.
    #[error("{}", yaml_report(path, problems))]
    Yaml {
        path: Option<PathBuf>,
        problems: Vec<ConfigProblem>,
    },
    /// Flags the parser accepts but vllm-rs cannot honour yet: one `not supported yet: --flag` line each.
    #[error("{}", unsupported_report(flags))]
    Unsupported { flags: Vec<String> },
    #[error("environment variable {var}={value:?} is invalid: {reason}")]
    Env {
        var: String,
        value: String,
        reason: String,
    },
    /// Values that are fine one by one but not together.
    #[error("--{key}: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    /// The flag, YAML key or environment variable concerned (the first one, for several).
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::JsonArg { flag, .. } => Some(flag),
            ConfigError::Yaml { problems, .. } => problems.first().and_then(|p| p.key.as_deref()),
            ConfigError::Unsupported { flags } => flags.first().map(String::as_str),
            ConfigError::Env { var, .. } => Some(var),
            ConfigError::Invalid { key, .. } => Some(key),
            ConfigError::Cli(_) | ConfigError::ReadConfig { .. } => None,
        }
    }

    /// The YAML line concerned (the first one, for several).
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Yaml { problems, .. } => problems.iter().find_map(|p| p.line),
            _ => None,
        }
    }

    /// The flag name a misspelt key or flag probably meant.
    pub fn suggestion(&self) -> Option<&str> {
        match self {
            ConfigError::Yaml { problems, .. } => {
                problems.iter().find_map(|p| p.suggestion.as_deref())
            }
            _ => None,
        }
    }

    /// Prints the error as a command-line tool should and exits: clap's own output and exit code
    /// (0 for `--help`/`--version`, 2 for usage errors), otherwise `error: ...` and exit code 2.
    pub fn exit(&self) -> ! {
        match self {
            ConfigError::Cli(e) => e.exit(),
            other => {
                eprintln!("error: {other}");
                std::process::exit(2)
            }
        }
    }
}
