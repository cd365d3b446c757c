//! Rendering Hugging Face chat templates (Jinja2) with minijinja.
//!
//! transformers renders templates in a sandboxed Jinja2 environment with `trim_blocks` and
//! `lstrip_blocks` on, and gives them `raise_exception`, `strftime_now` and its own `tojson`
//! (Python `json.dumps`, no HTML escaping). We set minijinja up the same way, add Python's string
//! and dict methods (minijinja-contrib `pycompat`), and print `None`/`True`/`False` as Python
//! does. Templates get no loader, so they cannot read files, and a fuel limit stops runaway loops.

use std::collections::BTreeMap;

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Environment, Error, ErrorKind, Value};
use serde_json::Map;

use super::pyjson::{self, DumpOptions};
use super::strftime;

/// Instruction budget of one render. Qwen2.5's template renders 2,000 messages with tools and
/// tool calls on under 200k (see the golden tests), so this leaves room for conversations 50
/// times longer, while a template stuck in a loop stops after about half a second of CPU.
const FUEL: u64 = 10_000_000;
const TEMPLATE_NAME: &str = "chat_template";

#[derive(Debug, thiserror::Error)]
pub enum ChatTemplateError {
    /// The template does not compile.
    #[error("invalid chat template: {0}")]
    Syntax(String),
    /// The template called `raise_exception(msg)`, typically to reject the conversation.
    #[error("{0}")]
    Raised(String),
    /// Rendering failed otherwise (bad input shape, undefined operation, fuel exhausted, ...).
    #[error("chat template rendering failed: {0}")]
    Render(String),
}

/// The message of `raise_exception`, carried as the error source so that `render` can tell a
/// deliberate rejection from a broken template.
#[derive(Debug)]
struct Raised(String);

impl std::fmt::Display for Raised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Raised {}

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: Option<String>,
    eos_token: Option<String>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compiles `source` once; `bos_token`/`eos_token` become template variables of the same name.
    pub fn new(
        source: &str,
        bos_token: Option<&str>,
        eos_token: Option<&str>,
    ) -> Result<Self, ChatTemplateError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(false);
        env.set_fuel(Some(FUEL));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_formatter(python_formatter);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned(TEMPLATE_NAME, strip_generation_tags(source))
            .map_err(|e| ChatTemplateError::Syntax(describe(&e)))?;
        Ok(ChatTemplate {
            env,
            bos_token: bos_token.map(str::to_string),
            eos_token: eos_token.map(str::to_string),
        })
    }

    /// Renders `messages`. `extra` holds everything else the template may read (`tools`,
    /// `documents`, chat_template_kwargs such as `enable_thinking`); its entries override
    /// `bos_token`/`eos_token`, as transformers' kwargs do.
    pub fn render(
        &self,
        messages: &[serde_json::Value],
        add_generation_prompt: bool,
        extra: &Map<String, serde_json::Value>,
    ) -> Result<String, ChatTemplateError> {
        let mut ctx: BTreeMap<String, Value> = BTreeMap::new();
        // transformers passes tools/documents as None when absent, so `tools is not none` is false.
        ctx.insert("tools".into(), Value::from(()));
        ctx.insert("documents".into(), Value::from(()));
        if let Some(bos) = &self.bos_token {
            ctx.insert("bos_token".into(), Value::from(bos.as_str()));
        }
        if let Some(eos) = &self.eos_token {
            ctx.insert("eos_token".into(), Value::from(eos.as_str()));
        }
        for (key, value) in extra {
            ctx.insert(key.clone(), Value::from_serialize(value));
        }
        ctx.insert("messages".into(), Value::from_serialize(messages));
        ctx.insert(
            "add_generation_prompt".into(),
            Value::from(add_generation_prompt),
        );

        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| ChatTemplateError::Render(describe(&e)))?;
        template.render(ctx).map_err(|e| match raised_message(&e) {
            Some(msg) => ChatTemplateError::Raised(msg),
            None => ChatTemplateError::Render(describe(&e)),
        })
    }
}

/// The error with its causes, one line.
fn describe(e: &Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        msg.push_str(": ");
        msg.push_str(&cause.to_string());
        source = cause.source();
    }
    msg
}

fn raised_message(e: &Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(cause) = source {
        if let Some(raised) = cause.downcast_ref::<Raised>() {
            return Some(raised.0.clone());
        }
        source = cause.source();
    }
    None
}

/// transformers' assistant-mask tags `{% generation %}`…`{% endgeneration %}` only mark spans;
/// minijinja does not know them, so they become an always-true `if` block (keeping their
/// whitespace-control markers).
fn strip_generation_tags(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        // The closing `%}` is searched after the opening `{%`: in `{%}` they overlap.
        let Some(len) = rest[start + 2..].find("%}").map(|i| i + 2) else {
            break;
        };
        let tag = &rest[start..start + len + 2];
        let inner =
            tag[2..tag.len() - 2].trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        out.push_str(&rest[..start]);
        match inner {
            "generation" => out.push_str(&tag.replacen("generation", "if true", 1)),
            "endgeneration" => out.push_str(&tag.replacen("endgeneration", "endif", 1)),
            _ => out.push_str(tag),
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

/// Python's `str()` for the scalars whose Jinja2 and minijinja spellings differ.
fn python_formatter(
    out: &mut minijinja::Output,
    state: &minijinja::State,
    value: &Value,
) -> Result<(), Error> {
    match value.kind() {
        ValueKind::None => out.write_str("None").map_err(Error::from),
        ValueKind::Bool => out
            .write_str(if value.is_true() { "True" } else { "False" })
            .map_err(Error::from),
        _ => minijinja::escape_formatter(out, state, value),
    }
}

fn raise_exception(msg: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, msg.clone()).with_source(Raised(msg)))
}

fn strftime_now(format: String) -> String {
    strftime::format(&strftime::DateTime::now_utc(), &format)
}

/// transformers' `tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`.
fn tojson(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let invalid = |msg: String| Error::new(ErrorKind::InvalidOperation, msg);
    let indent = match kwargs.get::<Option<Value>>("indent")? {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) if v.kind() == ValueKind::String => v.as_str().map(str::to_string),
        Some(v) => {
            let n = i64::try_from(v).map_err(|e| {
                invalid(format!(
                    "tojson: indent must be an integer or a string: {e}"
                ))
            })?;
            Some(" ".repeat(n.clamp(0, 64) as usize))
        }
    };
    let mut opts = DumpOptions::new(indent);
    if let Some(ensure_ascii) = kwargs.get::<Option<bool>>("ensure_ascii")? {
        opts.ensure_ascii = ensure_ascii;
    }
    if let Some(sort_keys) = kwargs.get::<Option<bool>>("sort_keys")? {
        opts.sort_keys = sort_keys;
    }
    if let Some(separators) = kwargs.get::<Option<Value>>("separators")? {
        if !separators.is_none() {
            let parts: Vec<String> = separators
                .try_iter()
                .map_err(|e| invalid(format!("tojson: separators must be a pair of strings: {e}")))?
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| invalid("tojson: separators must be a pair of strings".into()))?;
            let [item, key] = <[String; 2]>::try_from(parts)
                .map_err(|_| invalid("tojson: separators must be a pair of strings".into()))?;
            opts.item_separator = item;
            opts.key_separator = key;
        }
    }
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(value)
        .map_err(|e| invalid(format!("tojson: value is not JSON-serializable: {e}")))?;
    Ok(Value::from(pyjson::dumps(&json, &opts)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `chat_template` fuzz target: `{%}` (an opening tag whose `%` also reads
    /// as a closing one) made the generation-tag rewrite slice backwards and panic.
    #[test]
    fn overlapping_tag_markers_do_not_panic() {
        assert_eq!(strip_generation_tags("{%}"), "{%}");
        assert_eq!(strip_generation_tags("a{%}b%}c"), "a{%}b%}c");
        assert!(matches!(
            ChatTemplate::new("{%}", None, None),
            Err(ChatTemplateError::Syntax(_))
        ));
    }

    #[test]
    fn generation_tags_become_plain_blocks() {
        let src = "a{% generation %}b{%- endgeneration -%}c{% if x %}{% endif %}";
        assert_eq!(
            strip_generation_tags(src),
            "a{% if true %}b{%- endif -%}c{% if x %}{% endif %}"
        );
        let t = ChatTemplate::new(src, None, None).unwrap();
        assert_eq!(t.render(&[], false, &Map::new()).unwrap(), "abc");
    }
}
