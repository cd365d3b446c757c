//! Putting the layers together: defaults < YAML file < command line (and `VLLM_API_KEY` where
//! neither gave `--api-key`).

use std::collections::BTreeMap;
use std::path::Path;

use clap::parser::ValueSource;
use clap::{ArgMatches, Command, FromArgMatches};
use serde_json::Value;

use crate::config::args::{flags, Flag, Origins, ServeConfig, Source};
use crate::config::env::EnvSettings;
use crate::config::error::{ConfigError, ConfigProblem};
use crate::config::json_args::prepass;
use crate::config::yaml::{self, clap_message, parse_tokens};

/// The flags whose values are secrets and are never shown.
const SECRETS: &[&str] = &["api_key", "hf_token"];

/// The CORS lists also take vLLM's form, a JSON list in one argument.
const JSON_LISTS: &[&str] = &["allowed_origins", "allowed_methods", "allowed_headers"];

struct YamlLayer {
    matches: ArgMatches,
    value: Value,
    empty_lists: Vec<String>,
}

fn internal(e: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        key: "config".into(),
        message: format!("internal error: {e}"),
    }
}

fn yaml_layer(
    text: &str,
    path: Option<&Path>,
    cmd: &Command,
    flags: &[Flag],
) -> Result<YamlLayer, ConfigError> {
    let fail = |problems| ConfigError::Yaml {
        path: path.map(Path::to_path_buf),
        problems,
    };
    let layer = yaml::read(text, cmd, flags);
    if !layer.problems.is_empty() {
        return Err(fail(layer.problems));
    }
    let tokens: Vec<String> = layer
        .entries
        .iter()
        .flat_map(|e| e.tokens.iter().cloned())
        .collect();
    let matches = parse_tokens(cmd, flags, &tokens).map_err(|message| {
        fail(vec![ConfigProblem {
            line: None,
            key: None,
            message,
            suggestion: None,
        }])
    })?;
    let cfg = ServeConfig::from_arg_matches(&matches).map_err(|e| {
        fail(vec![ConfigProblem {
            line: None,
            key: None,
            message: clap_message(&e),
            suggestion: None,
        }])
    })?;
    let value = serde_json::to_value(&cfg).map_err(internal)?;
    let empty_lists = layer
        .entries
        .iter()
        .filter(|e| e.empty_list)
        .map(|e| e.flag.id.clone())
        .collect();
    Ok(YamlLayer {
        matches,
        value,
        empty_lists,
    })
}

fn from_cli(matches: &ArgMatches, id: &str) -> bool {
    matches.value_source(id) == Some(ValueSource::CommandLine)
}

impl ServeConfig {
    /// Parses `args` (program name first, as `std::env::args()`), reads the `--config` YAML file
    /// if one is named, and applies `env`. Precedence: defaults < YAML < command line.
    ///
    /// `--help` and `--version` come back as [`ConfigError::Cli`]; call [`ConfigError::exit`].
    /// Unsupported features are not rejected here: call [`ServeConfig::check_supported`].
    pub fn load(args: Vec<String>, env: &EnvSettings) -> Result<ServeConfig, ConfigError> {
        let cmd = Self::cli_command();
        let flags = flags(&cmd);
        let mut args = args;
        if args.is_empty() {
            args.push("vllmd".into());
        }
        let argv = prepass(&args, &flags)?;
        let matches = cmd
            .clone()
            .try_get_matches_from(argv)
            .map_err(ConfigError::Cli)?;
        let cli = Self::from_arg_matches(&matches).map_err(ConfigError::Cli)?;
        let yaml = match &cli.config {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| ConfigError::ReadConfig {
                        path: path.clone(),
                        source,
                    })?;
                Some(yaml_layer(&text, Some(path), &cmd, &flags)?)
            }
            None => None,
        };
        Self::combine(&cli, &matches, yaml.as_ref(), &flags, env)
    }

    /// The settings of a YAML config text alone (defaults < YAML), as `vllmd --config FILE` would
    /// read them; for the TUI.
    pub fn from_yaml(text: &str, env: &EnvSettings) -> Result<ServeConfig, ConfigError> {
        let cmd = Self::cli_command();
        let flags = flags(&cmd);
        let matches = cmd
            .clone()
            .try_get_matches_from(["vllmd"])
            .map_err(ConfigError::Cli)?;
        let base = Self::from_arg_matches(&matches).map_err(ConfigError::Cli)?;
        let yaml = yaml_layer(text, None, &cmd, &flags)?;
        Self::combine(&base, &matches, Some(&yaml), &flags, env)
    }

    fn combine(
        cli: &ServeConfig,
        cli_matches: &ArgMatches,
        yaml: Option<&YamlLayer>,
        flags: &[Flag],
        env: &EnvSettings,
    ) -> Result<ServeConfig, ConfigError> {
        let mut merged = serde_json::to_value(cli).map_err(internal)?;
        let mut origins = BTreeMap::new();
        if from_cli(cli_matches, "model_tag") {
            origins.insert("model_tag".to_string(), Source::Cli);
        }
        for flag in flags {
            let id = flag.id.as_str();
            if from_cli(cli_matches, id) {
                origins.insert(id.to_string(), Source::Cli);
                continue;
            }
            let Some(y) = yaml else { continue };
            let value = if y.empty_lists.iter().any(|e| e == id) {
                Value::Array(Vec::new())
            } else if from_cli(&y.matches, id) {
                y.value.get(id).cloned().unwrap_or(Value::Null)
            } else {
                continue;
            };
            if let Some(slot) = merged.get_mut(id) {
                *slot = value;
                origins.insert(id.to_string(), Source::Yaml);
            }
        }
        let mut cfg: ServeConfig = serde_json::from_value(merged).map_err(internal)?;
        cfg.origins = Origins(origins);
        cfg.normalize(env)?;
        Ok(cfg)
    }

    fn normalize(&mut self, env: &EnvSettings) -> Result<(), ConfigError> {
        // As in vLLM, the positional model wins over --model.
        if let Some(tag) = &self.model_tag {
            self.model_config.model = Some(tag.clone());
            self.origins
                .0
                .insert("model".into(), self.source_of("model_tag"));
        }
        if self.frontend.api_key.is_empty() {
            if let Some(key) = &env.api_key {
                self.frontend.api_key = vec![key.clone()];
                self.origins.0.insert("api_key".into(), Source::Env);
            }
        }
        for id in JSON_LISTS {
            let list = match *id {
                "allowed_origins" => &mut self.frontend.allowed_origins,
                "allowed_methods" => &mut self.frontend.allowed_methods,
                _ => &mut self.frontend.allowed_headers,
            };
            let mut out = Vec::new();
            for item in list.iter() {
                if item.trim_start().starts_with('[') {
                    let items: Vec<String> =
                        serde_json::from_str(item).map_err(|e| ConfigError::Invalid {
                            key: id.replace('_', "-"),
                            message: format!("`{item}` is not a JSON list of strings: {e}"),
                        })?;
                    out.extend(items);
                } else {
                    out.push(item.clone());
                }
            }
            *list = out;
        }
        let s = &self.scheduler;
        if s.max_long_partial_prefills > s.max_num_partial_prefills {
            return Err(ConfigError::Invalid {
                key: "max-long-partial-prefills".into(),
                message: format!(
                    "{} is more than --max-num-partial-prefills ({})",
                    s.max_long_partial_prefills, s.max_num_partial_prefills
                ),
            });
        }
        if let Some(cpu) = self.lora.max_cpu_loras {
            if cpu < self.lora.max_loras {
                return Err(ConfigError::Invalid {
                    key: "max-cpu-loras".into(),
                    message: format!("{cpu} is less than --max-loras ({})", self.lora.max_loras),
                });
            }
        }
        Ok(())
    }

    /// Every setting with its value and where it came from (`default`, `yaml`, `cli` or `env`),
    /// in `--help` order; secrets are shown as `<redacted>`.
    pub fn effective_settings(&self) -> Vec<(String, String, &'static str)> {
        let cmd = Self::cli_command();
        let value = serde_json::to_value(self).unwrap_or(Value::Null);
        cmd.get_arguments()
            .map(|arg| {
                let id = arg.get_id().as_str();
                let name = match arg.get_long() {
                    Some(long) => format!("--{long}"),
                    None => "MODEL_TAG".to_string(),
                };
                let v = value.get(id).unwrap_or(&Value::Null);
                let shown = if SECRETS.contains(&id)
                    && !matches!(v, Value::Null)
                    && v != &Value::Array(Vec::new())
                {
                    "<redacted>".to_string()
                } else if id == "max_logprobs" && v.as_u64() == Some(usize::MAX as u64) {
                    "-1".to_string()
                } else {
                    match v {
                        Value::Null => "None".to_string(),
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    }
                };
                (name, shown, self.source_of(id).as_str())
            })
            .collect()
    }
}

/// Checks a YAML config text as `vllmd --config` would read it: syntax, unknown keys (with a
/// suggestion), values (with the flags' own parsers), and flags vllm-rs does not support yet.
/// Each problem carries the line of its key where it can be found. An empty list means the file
/// is good. Used by `vllm config validate FILE` and the TUI.
pub fn validate_yaml(text: &str) -> Vec<ConfigProblem> {
    let cmd = ServeConfig::cli_command();
    let flags = flags(&cmd);
    let layer = yaml::read(text, &cmd, &flags);
    if !layer.problems.is_empty() {
        return layer.problems;
    }
    let env = EnvSettings::default();
    let cfg = match ServeConfig::from_yaml(text, &env) {
        Ok(cfg) => cfg,
        Err(ConfigError::Yaml { problems, .. }) => return problems,
        Err(e) => {
            let key = e.key().map(str::to_string);
            let line = key.as_deref().and_then(|k| {
                let id = k.trim_start_matches('-').replace('-', "_");
                layer
                    .entries
                    .iter()
                    .find(|en| en.flag.id == id)
                    .and_then(|en| en.line)
            });
            let message = match &e {
                ConfigError::Invalid { message, .. } => message.clone(),
                other => other.to_string(),
            };
            return vec![ConfigProblem {
                line,
                key,
                message,
                suggestion: None,
            }];
        }
    };
    cfg.unsupported_flags()
        .into_iter()
        .map(|flag| {
            let long = flag.trim_start_matches('-');
            let entry = layer.entries.iter().find(|e| e.flag.long == long);
            ConfigProblem {
                line: entry.and_then(|e| e.line),
                key: Some(
                    entry
                        .map(|e| e.key.clone())
                        .unwrap_or_else(|| long.to_string()),
                ),
                message: format!("not supported yet: {flag}"),
                suggestion: None,
            }
        })
        .collect()
}
