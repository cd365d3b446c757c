//! `--chat-template-content-format`: whether a message's content reaches the chat template as
//! one string or as the OpenAI list of parts (`[{"type": "text", "text": ...}]`).
//!
//! `auto` follows vLLM's rule: a template that loops over a message's `content` (`{% for part
//! in message['content'] %}`) wants the parts, any other template a string. vLLM walks the
//! Jinja syntax tree; templates are small and this rule only needs `for`/`set` statements, so
//! a scan of the `{% ... %}` tags finds the same loops.

use std::collections::HashSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentFormat {
    String,
    OpenAi,
}

impl ContentFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ContentFormat::String => "string",
            ContentFormat::OpenAi => "openai",
        }
    }
}

/// The format for `option` (`auto`, `string` or `openai`) and the template source in use.
pub fn resolve(option: &str, template: Option<&str>) -> ContentFormat {
    match option {
        "openai" => ContentFormat::OpenAi,
        "string" => ContentFormat::String,
        _ => template.map(detect).unwrap_or(ContentFormat::String),
    }
}

/// The statement inside every `{% ... %}` tag, without whitespace-control marks.
fn statements(src: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(start) = rest.find("{%") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("%}") else { break };
        out.push(after[..end].trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace()));
        rest = &after[end + 2..];
    }
    out
}

/// The variable an expression starts from and what follows it: `messages[1:] | x` gives
/// (`messages`, `[1:]`).
fn split_base(expr: &str) -> (&str, &str) {
    let expr = expr
        .split('|')
        .next()
        .unwrap_or("")
        .trim()
        .trim_start_matches('(')
        .trim();
    let end = expr
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(expr.len());
    (&expr[..end], expr[end..].trim())
}

fn is_content_access(rest: &str) -> bool {
    let rest = rest.trim_end_matches(')').trim();
    matches!(rest, "['content']" | "[\"content\"]" | ".content")
}

/// `auto` detection on a template's source.
pub fn detect(src: &str) -> ContentFormat {
    let stmts = statements(src);
    let mut lists: HashSet<&str> = HashSet::from(["messages"]);
    let mut items: HashSet<&str> = HashSet::new();
    // Aliases can be defined before they are used in loops further down; two passes reach
    // every chain found in real templates (`set loop_messages = messages[1:]`, then a loop).
    for _ in 0..2 {
        for s in &stmts {
            if let Some(rest) = s.strip_prefix("set ") {
                let Some((name, expr)) = rest.split_once('=') else {
                    continue;
                };
                let (name, (base, tail)) = (name.trim(), split_base(expr));
                if lists.contains(base) {
                    match tail {
                        "" => lists.insert(name),
                        t if t.starts_with('[') && t.contains(':') => lists.insert(name),
                        t if t.starts_with('[') => items.insert(name),
                        _ => false,
                    };
                }
            } else if let Some(rest) = s.strip_prefix("for ") {
                let Some((target, iter)) = rest.split_once(" in ") else {
                    continue;
                };
                let iter = iter.split(" if ").next().unwrap_or(iter);
                let (base, tail) = split_base(iter);
                let target = target.trim();
                if lists.contains(base)
                    && (tail.is_empty() || tail.contains(':'))
                    && !target.contains(',')
                {
                    items.insert(target);
                } else if items.contains(base) && is_content_access(tail) {
                    return ContentFormat::OpenAi;
                }
            }
        }
    }
    ContentFormat::String
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_templates() {
        let chatml = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}";
        assert_eq!(detect(chatml), ContentFormat::String);
        assert_eq!(
            detect("{{ messages[0]['content'] }}"),
            ContentFormat::String
        );
        // A loop over something else called content is not a loop over a message's parts.
        assert_eq!(
            detect("{% for c in content %}{{ c }}{% endfor %}"),
            ContentFormat::String
        );
    }

    #[test]
    fn openai_templates() {
        let direct = "{%- for message in messages -%}{%- for part in message['content'] -%}{{ part.text }}{%- endfor -%}{%- endfor -%}";
        assert_eq!(detect(direct), ContentFormat::OpenAi);
        let attr = "{% for m in messages %}{% for p in m.content | selectattr('type', 'equalto', 'text') %}{{ p.text }}{% endfor %}{% endfor %}";
        assert_eq!(detect(attr), ContentFormat::OpenAi);
        let aliased = "{% set loop_messages = messages[1:] %}{% for message in loop_messages %}{% for c in message[\"content\"] if c.type == 'text' %}{{ c.text }}{% endfor %}{% endfor %}";
        assert_eq!(detect(aliased), ContentFormat::OpenAi);
        let indexed =
            "{% set first = messages[0] %}{% for c in first['content'] %}{{ c.text }}{% endfor %}";
        assert_eq!(detect(indexed), ContentFormat::OpenAi);
    }

    #[test]
    fn explicit_options_win() {
        assert_eq!(resolve("openai", None), ContentFormat::OpenAi);
        assert_eq!(
            resolve(
                "string",
                Some("{% for m in messages %}{% for p in m.content %}{% endfor %}{% endfor %}")
            ),
            ContentFormat::String
        );
        assert_eq!(resolve("auto", None), ContentFormat::String);
    }
}
