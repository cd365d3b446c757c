//! The argv pre-pass that runs before clap, so that clap sees one plain `--flag=value` per flag:
//!
//! * JSON flags: `--x '{"a": 1}'`, dotted keys `--x.a.b v` (a value is JSON when it parses as
//!   JSON, else a string) and list appends `--x.key+ v1 --x.key+=v2,v3` are folded, in order,
//!   into one JSON value given at the place of the first occurrence;
//! * `-O3`, `-O.level=3`, `-O 3`, `-O '{...}'`: the compilation config (a bare number is the level);
//! * `--no-x` for boolean flags becomes `--x=false`;
//! * `--max_model_len` becomes `--max-model-len` (vLLM accepts underscores);
//! * the multi-letter short forms (`-tp 2`, `-dp`, `-asc`, ...) become their long flags.

use serde_json::{Map, Value};

use crate::config::args::{Flag, Kind};
use crate::config::error::ConfigError;

/// Multi-letter short forms of the reference, which clap cannot declare.
pub(crate) const MULTI_LETTER_SHORTS: &[(&str, &str)] = &[
    ("asc", "api-server-count"),
    ("tp", "tensor-parallel-size"),
    ("pp", "pipeline-parallel-size"),
    ("dp", "data-parallel-size"),
    ("dpn", "data-parallel-rank"),
    ("dpr", "data-parallel-start-rank"),
    ("dpl", "data-parallel-size-local"),
    ("dpa", "data-parallel-address"),
    ("dpp", "data-parallel-rpc-port"),
    ("dpb", "data-parallel-backend"),
];

const COMPILATION_CONFIG: &str = "compilation-config";

/// Folds the special argv forms; `argv[0]` is the program name and is kept.
pub(crate) fn prepass(argv: &[String], flags: &[Flag]) -> Result<Vec<String>, ConfigError> {
    let mut out: Vec<String> = Vec::with_capacity(argv.len());
    // Per JSON flag: the slot in `out` reserved at its first occurrence, and the value so far.
    let mut folded: Vec<(String, usize, Option<Value>)> = Vec::new();
    let mut it = argv.iter();
    if let Some(prog) = it.next() {
        out.push(prog.clone());
    }
    let json_flag = |name: &str| flags.iter().any(|f| f.kind == Kind::Json && f.long == name);
    let bool_flag = |name: &str| flags.iter().any(|f| f.kind == Kind::Bool && f.long == name);

    while let Some(tok) = it.next() {
        if tok == "--" {
            out.push(tok.clone());
            out.extend(it.by_ref().cloned());
            break;
        }
        // (flag long name, path after it such as ".a.b+", value attached with '=')
        let mut json_use: Option<(String, String, Option<String>)> = None;
        if let Some(body) = tok.strip_prefix("--") {
            let (name_part, attached) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let end = name_part.find(['.', '+']).unwrap_or(name_part.len());
            let base = name_part[..end].replace('_', "-");
            let path = &name_part[end..];
            if json_flag(&base) {
                json_use = Some((base, path.to_string(), attached));
            } else if !path.is_empty() {
                out.push(tok.clone());
                continue;
            } else if let (Some(positive), None) = (base.strip_prefix("no-"), &attached) {
                out.push(if bool_flag(positive) {
                    format!("--{positive}=false")
                } else {
                    format!("--{base}")
                });
                continue;
            } else {
                out.push(match attached {
                    Some(v) => format!("--{base}={v}"),
                    None => format!("--{base}"),
                });
                continue;
            }
        } else if let Some(rest) = tok.strip_prefix("-O") {
            if rest.is_empty() {
                json_use = Some((COMPILATION_CONFIG.into(), String::new(), None));
            } else if let Some(v) = rest.strip_prefix('=') {
                json_use = Some((
                    COMPILATION_CONFIG.into(),
                    String::new(),
                    Some(v.to_string()),
                ));
            } else if rest.starts_with('.') {
                let (path, attached) = match rest.split_once('=') {
                    Some((p, v)) => (p.to_string(), Some(v.to_string())),
                    None => (rest.to_string(), None),
                };
                json_use = Some((COMPILATION_CONFIG.into(), path, attached));
            } else if rest.bytes().all(|b| b.is_ascii_digit()) {
                json_use = Some((
                    COMPILATION_CONFIG.into(),
                    String::new(),
                    Some(rest.to_string()),
                ));
            }
        } else if let Some(body) = tok.strip_prefix('-') {
            let (short, attached) = match body.split_once('=') {
                Some((s, v)) => (s, Some(v)),
                None => (body, None),
            };
            if let Some((_, long)) = MULTI_LETTER_SHORTS.iter().find(|(s, _)| *s == short) {
                out.push(match attached {
                    Some(v) => format!("--{long}={v}"),
                    None => format!("--{long}"),
                });
                continue;
            }
        }

        let Some((flag, path, attached)) = json_use else {
            out.push(tok.clone());
            continue;
        };
        let raw = match attached {
            Some(v) => v,
            None => match it.next() {
                Some(v) => v.clone(),
                None => {
                    return Err(ConfigError::JsonArg {
                        flag: format!("--{flag}{path}"),
                        message: "expects a value".into(),
                    })
                }
            },
        };
        let slot = match folded.iter().position(|(f, _, _)| *f == flag) {
            Some(i) => i,
            None => {
                folded.push((flag.clone(), out.len(), None));
                out.push(String::new());
                folded.len() - 1
            }
        };
        let current = &mut folded[slot].2;
        apply(current, &flag, &path, &raw).map_err(|message| ConfigError::JsonArg {
            flag: format!("--{flag}{path}"),
            message,
        })?;
    }

    for (flag, at, value) in folded {
        let text = value.map(|v| v.to_string()).unwrap_or_default();
        out[at] = format!("--{flag}={text}");
    }
    Ok(out)
}

/// A value of a dotted key or list append: JSON when it parses, else the string itself.
fn loose(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()))
}

fn apply(current: &mut Option<Value>, flag: &str, path: &str, raw: &str) -> Result<(), String> {
    if path.is_empty() {
        let mut v: Value =
            serde_json::from_str(raw).map_err(|e| format!("not valid JSON ({e}): {raw}"))?;
        if flag == COMPILATION_CONFIG && v.is_u64() {
            v = serde_json::json!({ "level": v });
        }
        match (current.as_mut(), v) {
            (Some(Value::Object(old)), Value::Object(new)) => merge(old, new),
            (_, v) => *current = Some(v),
        }
        return Ok(());
    }
    let (keys_part, append) = match path.strip_suffix('+') {
        Some(p) => (p, true),
        None => (path, false),
    };
    let keys: Vec<&str> = match keys_part.strip_prefix('.') {
        Some(k) => k.split('.').collect(),
        None if keys_part.is_empty() => Vec::new(),
        None => return Err("expected `.key` after the flag name".into()),
    };
    if keys.iter().any(|k| k.is_empty()) || (keys.is_empty() && !append) {
        return Err("empty key in the dotted name".into());
    }
    let mut node = current.get_or_insert_with(|| Value::Object(Map::new()));
    let mut walked = String::new();
    for (i, key) in keys.iter().enumerate() {
        let Value::Object(map) = node else {
            let at = if walked.is_empty() {
                "the value".to_string()
            } else {
                format!("`{walked}`")
            };
            return Err(format!(
                "{at} is not a JSON object, so it has no key `{key}`"
            ));
        };
        if !walked.is_empty() {
            walked.push('.');
        }
        walked.push_str(key);
        let last = i + 1 == keys.len();
        if last && !append {
            map.insert((*key).to_string(), loose(raw));
            return Ok(());
        }
        let fresh = if last {
            Value::Array(Vec::new())
        } else {
            Value::Object(Map::new())
        };
        node = map.entry((*key).to_string()).or_insert(fresh);
    }
    match node {
        Value::Array(items) => {
            items.extend(raw.split(',').map(loose));
            Ok(())
        }
        _ => Err(format!(
            "`{}` is not a list, so `+` cannot append to it",
            if walked.is_empty() { flag } else { &walked }
        )),
    }
}

/// Later keys win; objects present on both sides are merged key by key.
fn merge(old: &mut Map<String, Value>, new: Map<String, Value>) {
    for (k, v) in new {
        match (old.get_mut(&k), v) {
            (Some(Value::Object(o)), Value::Object(n)) => merge(o, n),
            (_, v) => {
                old.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> Vec<Flag> {
        let f = |long: &str, kind| Flag {
            id: long.replace('-', "_"),
            long: long.into(),
            kind,
        };
        vec![
            f("json-arg", Kind::Json),
            f(COMPILATION_CONFIG, Kind::Json),
            f("enforce-eager", Kind::Bool),
            f("port", Kind::Scalar),
        ]
    }

    fn run(args: &[&str]) -> Result<Vec<String>, ConfigError> {
        let argv: Vec<String> = std::iter::once("vllmd")
            .chain(args.iter().copied())
            .map(String::from)
            .collect();
        prepass(&argv, &flags())
    }

    fn folded(args: &[&str]) -> Value {
        let out = run(args).unwrap_or_default();
        let tok = out
            .iter()
            .find_map(|t| t.strip_prefix("--json-arg="))
            .unwrap_or("null");
        serde_json::from_str(tok).unwrap_or(Value::Null)
    }

    #[test]
    fn dotted_keys_and_appends_fold_into_one_value() {
        assert_eq!(
            folded(&["--json-arg.a.b", "1", "--json-arg.a.c=x"]),
            serde_json::json!({"a": {"b": 1, "c": "x"}})
        );
        assert_eq!(
            folded(&[
                "--json-arg",
                "{\"a\": {\"b\": 1}}",
                "--json-arg.a.d",
                "true"
            ]),
            serde_json::json!({"a": {"b": 1, "d": true}})
        );
        assert_eq!(
            folded(&["--json_arg.k+", "1", "--json-arg.k+=2,x"]),
            serde_json::json!({"k": [1, 2, "x"]})
        );
    }

    #[test]
    fn other_forms_are_rewritten_and_the_rest_kept() {
        let out = run(&[
            "m",
            "--no-enforce-eager",
            "--no-such",
            "--max_model_len=1k",
            "-tp",
            "2",
            "-dpb=mp",
            "-O3",
            "--",
            "--x.y",
        ]);
        let expected = [
            "vllmd",
            "m",
            "--enforce-eager=false",
            "--no-such",
            "--max-model-len=1k",
            "--tensor-parallel-size",
            "2",
            "--data-parallel-backend=mp",
            "--compilation-config={\"level\":3}",
            "--",
            "--x.y",
        ];
        assert_eq!(
            out.ok(),
            Some(expected.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        );
    }

    #[test]
    fn malformed_json_args_are_errors() {
        assert!(run(&["--json-arg"]).is_err());
        assert!(run(&["--json-arg", "{bad"]).is_err());
        assert!(run(&["--json-arg.a", "1", "--json-arg.a.b", "2"]).is_err());
        assert!(run(&["--json-arg.a", "1", "--json-arg.a+", "2"]).is_err());
        assert!(run(&["--json-arg..a", "1"]).is_err());
    }
}
