//! The YAML `--config` file. Each key is a flag name (kebab or snake case; JSON flags also take
//! dotted keys such as `hf-overrides.rope_theta`) and its value is turned into the flag's argv
//! tokens, so the file goes through the very value parsers of the command line. Problems carry
//! the key's line: serde_norway reports lines for syntax errors, and key lines are found in the text.

use clap::{ArgMatches, Command};
use serde_norway::Value as Yaml;

use crate::config::args::{Flag, Kind};
use crate::config::error::ConfigProblem;
use crate::config::json_args::prepass;
use crate::config::suggest::did_you_mean;

/// One top-level key of the file.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The key as written.
    pub(crate) key: String,
    pub(crate) line: Option<usize>,
    pub(crate) flag: Flag,
    pub(crate) tokens: Vec<String>,
    /// `key: []` on a list flag: an explicit empty list, which argv tokens cannot express.
    pub(crate) empty_list: bool,
}

/// The file, read: entries that parse and problems for the others.
pub(crate) struct Layer {
    pub(crate) entries: Vec<Entry>,
    pub(crate) problems: Vec<ConfigProblem>,
}

fn problem(line: Option<usize>, key: Option<&str>, message: impl Into<String>) -> ConfigProblem {
    ConfigProblem {
        line,
        key: key.map(str::to_string),
        message: message.into(),
        suggestion: None,
    }
}

/// The top-level keys of a block mapping and their 1-based lines, in order.
fn key_lines(text: &str) -> Vec<(String, usize)> {
    let mut found = Vec::new();
    let mut indent = None;
    for (n, line) in text.lines().enumerate() {
        let body = line.trim_start();
        if body.is_empty()
            || body.starts_with(['#', '%'])
            || body.starts_with("---")
            || body.starts_with("...")
        {
            continue;
        }
        let depth = line.len() - body.len();
        if depth != *indent.get_or_insert(depth) || body.starts_with(['-', '{', '[', '?']) {
            continue;
        }
        let key = match body.chars().next() {
            Some(q @ ('"' | '\'')) => body[1..].find(q).map(|end| body[1..1 + end].to_string()),
            // `:` is one byte, so `i + 1` is a char boundary only after it: test `c` first.
            _ => body.char_indices().find_map(|(i, c)| {
                (c == ':' && body[i + 1..].chars().next().is_none_or(char::is_whitespace))
                    .then(|| body[..i].trim_end().to_string())
            }),
        };
        if let Some(key) = key {
            found.push((key, n + 1));
        }
    }
    found
}

fn scalar_text(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Bool(b) => Some(b.to_string()),
        Yaml::Number(n) => Some(match n.as_f64() {
            // `1e6` or `4.0` for an integer flag: written as the integer it is.
            Some(f) if !n.is_i64() && !n.is_u64() && f.fract() == 0.0 && f.abs() < 1e15 => {
                format!("{}", f as i64)
            }
            _ => n.to_string(),
        }),
        _ => None,
    }
}

fn kind_of(v: &Yaml) -> &'static str {
    match v {
        Yaml::Sequence(_) => "a list",
        Yaml::Mapping(_) => "a mapping",
        Yaml::Tagged(_) => "a tagged value",
        _ => "a scalar",
    }
}

/// The argv tokens for `key: value`; `path` is the dotted part of the key (JSON flags only).
fn tokens(flag: &Flag, path: &str, value: &Yaml) -> Result<(Vec<String>, bool), String> {
    let name = format!("--{}{}", flag.long, path);
    if matches!(value, Yaml::Null) {
        // `key: ~` or `key:` leaves the flag at its default.
        return Ok((Vec::new(), false));
    }
    if let Yaml::Tagged(_) = value {
        return Err("YAML tags are not supported".into());
    }
    match flag.kind {
        Kind::Json => {
            if let (true, Yaml::Sequence(items)) = (path.ends_with('+'), value) {
                let mut out = Vec::new();
                for item in items {
                    let text = match scalar_text(item) {
                        Some(t) => t,
                        None => serde_json::to_string(item).map_err(|e| e.to_string())?,
                    };
                    out.push(format!("{name}={text}"));
                }
                return Ok((out, false));
            }
            let text = match value {
                Yaml::Sequence(_) | Yaml::Mapping(_) => serde_json::to_string(value)
                    .map_err(|e| format!("cannot be written as JSON: {e}"))?,
                // A string is the JSON text itself, as on the command line ('{"a": 1}').
                other => scalar_text(other).unwrap_or_default(),
            };
            Ok((vec![format!("{name}={text}")], false))
        }
        Kind::List => match value {
            Yaml::Sequence(items) => {
                let mut out = Vec::new();
                for item in items {
                    let text = scalar_text(item).ok_or_else(|| {
                        format!("list items must be scalars, not {}", kind_of(item))
                    })?;
                    out.push(format!("{name}={text}"));
                }
                Ok((out, items.is_empty()))
            }
            other => scalar_text(other)
                .map(|t| (vec![format!("{name}={t}")], false))
                .ok_or_else(|| {
                    format!("expected a list or a single value, got {}", kind_of(other))
                }),
        },
        Kind::Bool | Kind::Scalar => match scalar_text(value) {
            Some(t) => Ok((vec![format!("{name}={t}")], false)),
            None => Err(format!("expected a single value, got {}", kind_of(value))),
        },
    }
}

/// clap's message without the "error: " prefix, the usage and the help hint.
pub(crate) fn clap_message(err: &clap::Error) -> String {
    let rendered = err.render().to_string();
    let lines: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.is_empty())
        .collect();
    lines.join(" ").trim_start_matches("error: ").to_string()
}

/// Runs tokens through the pre-pass and clap, as the command line would be.
pub(crate) fn parse_tokens(
    cmd: &Command,
    flags: &[Flag],
    tokens: &[String],
) -> Result<ArgMatches, String> {
    let argv: Vec<String> = std::iter::once("vllmd".to_string())
        .chain(tokens.iter().cloned())
        .collect();
    let argv = prepass(&argv, flags).map_err(|e| e.to_string())?;
    cmd.clone()
        .try_get_matches_from(argv)
        .map_err(|e| clap_message(&e))
}

/// Reads the file into entries; every key is checked against the flags and its value against the
/// flag's parser, so `problems` lists everything wrong at once.
pub(crate) fn read(text: &str, cmd: &Command, flags: &[Flag]) -> Layer {
    let mut layer = Layer {
        entries: Vec::new(),
        problems: Vec::new(),
    };
    let mut doc: Yaml = match serde_norway::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let line = e.location().map(|l| l.line());
            // The line is reported separately; keep the rest ("while parsing ... at line 3").
            let mut msg = e.to_string();
            if let Some(at) = msg.find(" at line ") {
                let end = msg[at..].find(',').map_or(msg.len(), |i| at + i);
                msg.replace_range(at..end, "");
            }
            layer
                .problems
                .push(problem(line, None, format!("invalid YAML: {msg}")));
            return layer;
        }
    };
    if let Err(e) = doc.apply_merge() {
        layer
            .problems
            .push(problem(None, None, format!("invalid YAML merge key: {e}")));
        return layer;
    }
    let map = match doc {
        Yaml::Null => return layer,
        Yaml::Mapping(m) => m,
        other => {
            layer.problems.push(problem(
                Some(1),
                None,
                format!(
                    "expected a mapping of flag names to values, got {}",
                    kind_of(&other)
                ),
            ));
            return layer;
        }
    };
    let mut lines = key_lines(text);
    let mut seen: Vec<(String, String, Option<usize>)> = Vec::new();
    for (k, value) in map {
        let Some(key) = k.as_str().map(str::to_string) else {
            layer.problems.push(problem(
                None,
                None,
                format!(
                    "keys must be flag names, not {}",
                    scalar_text(&k).unwrap_or_else(|| kind_of(&k).into())
                ),
            ));
            continue;
        };
        let line = lines
            .iter()
            .position(|(l, _)| *l == key)
            .map(|i| lines.remove(i).1);
        let end = key.find(['.', '+']).unwrap_or(key.len());
        let (head, path) = (key[..end].replace('_', "-"), &key[end..]);
        if head == "model-tag" {
            let mut p = problem(
                line,
                Some(&key),
                "the positional MODEL_TAG is written as the `model` key in a config file",
            );
            p.suggestion = Some("model".into());
            layer.problems.push(p);
            continue;
        }
        let Some(flag) = flags.iter().find(|f| f.long == head) else {
            let mut p = problem(line, Some(&key), "unknown key");
            p.suggestion = did_you_mean(&key[..end], flags.iter().map(|f| f.long.as_str()));
            layer.problems.push(p);
            continue;
        };
        if flag.id == "config" {
            layer.problems.push(problem(
                line,
                Some(&key),
                "a config file cannot name another config file",
            ));
            continue;
        }
        if !path.is_empty() && flag.kind != Kind::Json {
            layer.problems.push(problem(
                line,
                Some(&key),
                format!(
                    "dotted keys and `+` only apply to JSON flags; --{} is not one",
                    flag.long
                ),
            ));
            continue;
        }
        if path.is_empty() {
            if let Some((_, first, first_line)) = seen.iter().find(|(id, _, _)| *id == flag.id) {
                let at = first_line
                    .map(|l| format!(" on line {l}"))
                    .unwrap_or_default();
                layer.problems.push(problem(
                    line,
                    Some(&key),
                    format!("duplicate of `{first}`{at}"),
                ));
                continue;
            }
            seen.push((flag.id.clone(), key.clone(), line));
        }
        match tokens(flag, path, &value) {
            Ok((tokens, empty_list)) => {
                if let Err(msg) = parse_tokens(cmd, flags, &tokens) {
                    layer.problems.push(problem(line, Some(&key), msg));
                    continue;
                }
                layer.entries.push(Entry {
                    key,
                    line,
                    flag: flag.clone(),
                    tokens,
                    empty_list,
                });
            }
            Err(msg) => layer.problems.push(problem(line, Some(&key), msg)),
        }
    }
    layer
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `yaml_config` fuzz target: a multi-byte character before the first `:`
    /// of a line made `key_lines` slice inside it and panic.
    #[test]
    fn key_lines_with_multibyte_characters() {
        let text = "\u{fffd}interleave_mm_strings: 1\nkv-cac\u{e9}\u{6f2}e-dtype: fp8\n";
        let keys = key_lines(text);
        assert_eq!(
            keys,
            vec![
                ("\u{fffd}interleave_mm_strings".to_string(), 1),
                ("kv-cac\u{e9}\u{6f2}e-dtype".to_string(), 2),
            ]
        );
        let problems = crate::config::validate_yaml(text);
        assert!(
            problems.iter().any(|p| p.message.contains("unknown key")),
            "{problems:?}"
        );
    }

    #[test]
    fn key_lines_finds_top_level_keys_only() {
        let text = "# comment\n---\nport: 8000\nhf-overrides:\n  nested: 1\n\"quoted-key\": 2\nurl: http://x:1\n  - item\n";
        let keys = key_lines(text);
        let expect = [
            ("port", 3),
            ("hf-overrides", 4),
            ("quoted-key", 6),
            ("url", 7),
        ];
        assert_eq!(
            keys,
            expect
                .iter()
                .map(|(k, l)| (k.to_string(), *l))
                .collect::<Vec<_>>()
        );
    }
}
