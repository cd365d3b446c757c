//! Loading a Hugging Face folder's `tokenizer.json` and `tokenizer_config.json`.
//!
//! `tokenizer.json` holds the whole tokenization pipeline; `tokenizer_config.json` adds what
//! transformers keeps on the Python side: the chat template, which added tokens are BOS/EOS, and
//! the `add_bos_token`/`add_eos_token` switches. Newer checkpoints keep the template in a separate
//! `chat_template.jinja` (or `chat_template.json`) next to the config; those are read as well.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{added_special_ids, bos_eos_processor, Parts};
use crate::LoadError;

fn err(path: &Path, msg: impl Into<String>) -> LoadError {
    LoadError::Tokenizer {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

pub(super) fn load(tokenizer_json: &Path, config_json: Option<&Path>) -> Result<Parts, LoadError> {
    let bytes = std::fs::read(tokenizer_json).map_err(|e| LoadError::io(tokenizer_json, e))?;
    let mut inner = tokenizers::Tokenizer::from_bytes(&bytes)
        .map_err(|e| err(tokenizer_json, format!("cannot parse tokenizer.json: {e}")))?;

    let config = match config_json {
        None => serde_json::Map::new(),
        Some(path) => read_json_object(path)?,
    };
    let config_path = config_json.unwrap_or(tokenizer_json);

    let token_id = |key: &str| -> Result<Option<u32>, LoadError> {
        let Some(text) = config.get(key).and_then(token_text) else {
            return Ok(None);
        };
        inner.token_to_id(text).map(Some).ok_or_else(|| {
            err(
                config_path,
                format!("`{key}` `{text}` is not in the tokenizer's vocabulary"),
            )
        })
    };
    let bos_id = token_id("bos_token")?;
    let eos_id = token_id("eos_token")?;

    // transformers rebuilds the post-processor from these switches where the config sets them, so
    // they win over tokenizer.json. We only rebuild when they disagree with what it does now.
    let flag = |key: &str| config.get(key).and_then(Value::as_bool);
    if flag("add_bos_token").is_some() || flag("add_eos_token").is_some() {
        let (prefix, suffix) = added_special_ids(&inner).map_err(|m| err(tokenizer_json, m))?;
        let has_bos = bos_id.is_some() && prefix.last().copied() == bos_id;
        let has_eos = eos_id.is_some() && suffix.first().copied() == eos_id;
        let want_bos = flag("add_bos_token").unwrap_or(has_bos) && bos_id.is_some();
        let want_eos = flag("add_eos_token").unwrap_or(has_eos) && eos_id.is_some();
        if want_bos != has_bos || want_eos != has_eos {
            let bos = if want_bos {
                config.get("bos_token").and_then(token_text).zip(bos_id)
            } else {
                None
            };
            let eos = if want_eos {
                config.get("eos_token").and_then(token_text).zip(eos_id)
            } else {
                None
            };
            let processor = bos_eos_processor(bos, eos).map_err(|m| err(config_path, m))?;
            inner.with_post_processor(Some(processor));
        }
    }

    let special_ids = inner
        .get_added_tokens_decoder()
        .into_iter()
        .filter(|(_, token)| token.special)
        .map(|(id, _)| id)
        .collect();

    let chat_template = match config.get("chat_template") {
        Some(v) => template_from_config(v).map_err(|m| err(config_path, m))?,
        None => None,
    };
    let chat_template = match chat_template {
        Some(t) => Some(t),
        None => sibling_template(config_path)?,
    };

    Ok(Parts {
        inner,
        bos_id,
        eos_id,
        special_ids,
        chat_template,
        vocab_size: None,
    })
}

fn read_json_object(path: &Path) -> Result<serde_json::Map<String, Value>, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| LoadError::io(path, e))?;
    match serde_json::from_str(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(err(path, "expected a JSON object")),
        Err(e) => Err(err(path, format!("invalid JSON: {e}"))),
    }
}

/// A special token in the config is either its text or an AddedToken object with `content`.
fn token_text(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s),
        Value::Object(o) => o.get("content").and_then(Value::as_str),
        _ => None,
    }
}

/// `chat_template` is a string, or (older multi-template configs) a list of `{name, template}`
/// of which the one named "default" is what transformers uses.
fn template_from_config(v: &Value) -> Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Array(items) => {
            let named = |want: &str| {
                items.iter().find_map(|item| {
                    (item.get("name").and_then(Value::as_str) == Some(want))
                        .then(|| item.get("template").and_then(Value::as_str))
                        .flatten()
                })
            };
            match named("default") {
                Some(t) => Ok(Some(t.to_string())),
                None if items.is_empty() => Ok(None),
                None => Err("`chat_template` list has no template named \"default\"".into()),
            }
        }
        _ => Err("`chat_template` is neither a string nor a list of named templates".into()),
    }
}

/// `chat_template.jinja`, else `chat_template.json`, in the folder of `near`.
fn sibling_template(near: &Path) -> Result<Option<String>, LoadError> {
    let dir = near
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let jinja = dir.join("chat_template.jinja");
    if jinja.is_file() {
        return std::fs::read_to_string(&jinja)
            .map(Some)
            .map_err(|e| LoadError::io(&jinja, e));
    }
    let json = dir.join("chat_template.json");
    if json.is_file() {
        let map = read_json_object(&json)?;
        return match map.get("chat_template") {
            Some(v) => template_from_config(v).map_err(|m| err(&json, m)),
            None => Ok(None),
        };
    }
    Ok(None)
}
