//! The clap command behind [`ServeConfig`] and what the rest of the module needs to know of its
//! flags: negatable booleans, flag kinds, value sources, and the defaults.

use std::any::TypeId;
use std::collections::BTreeMap;

use clap::builder::BoolishValueParser;
use clap::{Arg, ArgAction, Command, CommandFactory, FromArgMatches};

use super::ServeConfig;

pub(crate) const AFTER_HELP: &str = "\
Boolean flags accept --flag, --flag=true|false and --no-flag.
JSON flags accept a JSON string, dotted keys (--hf-overrides.rope_theta 1e6) and list appends
(--speculative-config.key+ v1 --speculative-config.key+=v2,v3).
--config FILE reads flags from a YAML file (keys are flag names, kebab or snake case); flags on
the command line win over the file. Flag names may also be written with underscores.
Environment: VLLM_API_KEY, VLLM_LOGGING_LEVEL, VLLM_CONFIGURE_LOGGING, VLLM_LOGGING_CONFIG_PATH,
VLLM_LOGGING_PREFIX, VLLM_CACHE_ROOT, VLLM_CPU_KVCACHE_SPACE, VLLM_ENGINE_ITERATION_TIMEOUT_S,
VLLM_KEEP_ALIVE_ON_ENGINE_DEATH, VLLM_ALLOW_LONG_MAX_MODEL_LEN, VLLM_SERVER_DEV_MODE,
VLLM_HTTP_TIMEOUT_KEEP_ALIVE, VLLM_NO_DEPRECATION_WARNING (docs/environment.md lists every
VLLM_* variable; those without effect here are named in a start-up warning).
vllm-rs only (no vLLM equivalent): VLLM_RS_MAX_WAITING_REQUESTS=N answers 503 with Retry-After
to new requests while N wait for a slot (default: no bound).
Each flag's fate in vllm-rs is shown in [brackets] when it is refused or has no effect.
No usage statistics are ever collected or sent.";

/// Where the value of a setting came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Default,
    Yaml,
    Cli,
    Env,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::Yaml => "yaml",
            Source::Cli => "cli",
            Source::Env => "env",
        }
    }
}

/// Sources of the settings that did not come from the defaults, keyed by flag id.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origins(pub(crate) BTreeMap<String, Source>);

/// How a flag takes its value; decides how YAML values and argv forms are turned into tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Bool,
    Json,
    List,
    Scalar,
}

/// One long flag of the command: its id (the field and snake_case YAML key) and long name.
#[derive(Debug, Clone)]
pub(crate) struct Flag {
    pub(crate) id: String,
    pub(crate) long: String,
    pub(crate) kind: Kind,
}

fn is_bool(arg: &Arg) -> bool {
    arg.get_value_parser().type_id() == TypeId::of::<bool>()
        && matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::Set)
}

/// `--x` alone means true, `--x=false` false; the pre-pass turns `--no-x` into `--x=false`.
/// `require_equals` keeps `--enforce-eager MODEL` from reading MODEL as the flag's value.
fn negatable(arg: Arg) -> Arg {
    let was_flag = matches!(arg.get_action(), ArgAction::SetTrue);
    let has_default = !arg.get_default_values().is_empty();
    let mut arg = arg
        .action(ArgAction::Set)
        .num_args(0..=1)
        .require_equals(true)
        .default_missing_value("true")
        .value_parser(BoolishValueParser::new())
        .value_name("BOOL")
        .hide_possible_values(true);
    if was_flag && !has_default {
        arg = arg.default_value("false").hide_default_value(true);
    }
    arg
}

/// Appends the flag's fate in vllm-rs (refused, no effect) to its help text.
fn with_fate(arg: Arg) -> Arg {
    let Some(suffix) = crate::config::fate::help_suffix(arg.get_id().as_str()) else {
        return arg;
    };
    let short = arg
        .get_help()
        .map(|h| format!("{h} {suffix}"))
        .unwrap_or_else(|| suffix.clone());
    let long = arg.get_long_help().map(|h| format!("{h}\n\n{suffix}"));
    let arg = arg.help(short);
    match long {
        Some(l) => arg.long_help(l),
        None => arg,
    }
}

impl ServeConfig {
    /// The command `vllmd` parses with: clap's derived command with negatable booleans and
    /// last-one-wins repeated flags (as argparse). Use it to render `--help` elsewhere (the TUI).
    pub fn cli_command() -> Command {
        <Self as CommandFactory>::command()
            .args_override_self(true)
            .mut_args(|a| if is_bool(&a) { negatable(a) } else { a })
            .mut_args(with_fate)
    }

    /// Where each setting came from: `default`, `yaml`, `cli` or `env`.
    pub fn source_of(&self, id: &str) -> Source {
        self.origins.0.get(id).copied().unwrap_or(Source::Default)
    }
}

/// The long flags of the command, in declaration order.
pub(crate) fn flags(cmd: &Command) -> Vec<Flag> {
    cmd.get_arguments()
        .filter_map(|a| {
            let long = a.get_long()?;
            let kind = if a.get_value_parser().type_id() == TypeId::of::<serde_json::Value>() {
                Kind::Json
            } else if a.get_value_parser().type_id() == TypeId::of::<bool>() {
                Kind::Bool
            } else if matches!(a.get_action(), ArgAction::Append) {
                Kind::List
            } else {
                Kind::Scalar
            };
            Some(Flag {
                id: a.get_id().as_str().to_string(),
                long: long.to_string(),
                kind,
            })
        })
        .collect()
}

impl Default for ServeConfig {
    /// The reference defaults: the same values as an empty command line.
    fn default() -> Self {
        let matches = Self::cli_command().try_get_matches_from(["vllmd"]);
        match matches.and_then(|m| Self::from_arg_matches(&m)) {
            Ok(cfg) => cfg,
            // Only reachable if a default in the struct fails its own value parser, which the
            // tests catch; a panic with clap's message is the most useful outcome then.
            Err(e) => panic!("built-in defaults do not parse: {e}"),
        }
    }
}
