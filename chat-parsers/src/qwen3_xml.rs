//! `qwen3_xml` / `qwen3_coder` (Qwen3-Coder chat template):
//! `<tool_call>\n<function=NAME>\n<parameter=KEY>\nVALUE\n</parameter>\n</function>\n</tool_call>`.
//! Values are raw text, typed by the tool's JSON schema.

use crate::stream::PartialCall;
use crate::{python_literal, ParsedToolCalls, ToolCall, ToolSchema};
use serde_json::{Map, Value};

const TOOL_CALL: &str = "<tool_call>";
const TOOL_CALL_END: &str = "</tool_call>";
const FUNCTION: &str = "<function=";
const FUNCTION_END: &str = "</function>";
const PARAMETER: &str = "<parameter=";
const PARAMETER_END: &str = "</parameter>";
/// A bare `<function=` block (without the `<tool_call>` wrapper) is accepted too.
pub(crate) const MARKERS: &[&str] = &[TOOL_CALL, FUNCTION];

struct Block<'a> {
    name: &'a str,
    body: &'a str,
    closed: bool,
}

/// The function blocks of `section`, and whether a further block's name is still being
/// generated. A block ends at `</function>` (or, failing that, `</tool_call>`); the last one may
/// run to the end of the text.
fn blocks(section: &str) -> Vec<Block<'_>> {
    let mut out = Vec::new();
    let mut rest = section;
    while let Some(pos) = rest.find(FUNCTION) {
        let after = &rest[pos + FUNCTION.len()..];
        let Some(gt) = after.find('>') else { break };
        let name = after[..gt].trim();
        if name.is_empty() || name.contains(['<', '\n']) {
            break;
        }
        let body_all = &after[gt + 1..];
        let end = body_all
            .find(FUNCTION_END)
            .map(|e| (e, FUNCTION_END.len()))
            .or_else(|| {
                body_all
                    .find(TOOL_CALL_END)
                    .map(|e| (e, TOOL_CALL_END.len()))
            });
        match end {
            Some((e, len)) => {
                out.push(Block {
                    name,
                    body: &body_all[..e],
                    closed: true,
                });
                rest = &body_all[e + len..];
            }
            None => {
                out.push(Block {
                    name,
                    body: body_all,
                    closed: false,
                });
                break;
            }
        }
    }
    out
}

/// `(key, raw value)` pairs; a value ends at `</parameter>`, the next `<parameter=`, or the
/// end of the block.
fn parameters(body: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(pos) = rest.find(PARAMETER) {
        let after = &rest[pos + PARAMETER.len()..];
        let Some(gt) = after.find('>') else { break };
        let key = after[..gt].trim();
        let value_all = &after[gt + 1..];
        let (value, next) = match (value_all.find(PARAMETER_END), value_all.find(PARAMETER)) {
            (Some(e), Some(p)) if p < e => (&value_all[..p], p),
            (Some(e), _) => (&value_all[..e], e + PARAMETER_END.len()),
            (None, Some(p)) => (&value_all[..p], p),
            (None, None) => (value_all, value_all.len()),
        };
        // The template writes each value between newlines.
        let value = value.strip_prefix('\n').unwrap_or(value);
        let value = value.strip_suffix('\n').unwrap_or(value);
        out.push((key, value));
        rest = &value_all[next..];
    }
    out
}

/// The JSON-schema type of parameter `key` of tool `function`, if declared.
fn param_type<'a>(tools: &'a [ToolSchema], function: &str, key: &str) -> Option<&'a str> {
    let tool = tools.iter().find(|t| t.name == function)?;
    match tool.parameters.get("properties")?.get(key)?.get("type")? {
        Value::String(t) => Some(t),
        // ["string", "null"]: the first non-null type decides.
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null"),
        _ => None,
    }
}

fn convert(raw: &str, ty: Option<&str>) -> Value {
    let string = || Value::String(raw.to_string());
    let json = || serde_json::from_str::<Value>(raw.trim()).ok();
    match ty {
        Some("string" | "str" | "text" | "varchar" | "char" | "enum") => string(),
        Some("integer" | "int" | "number" | "float" | "double") => match json() {
            Some(n @ Value::Number(_)) => n,
            _ => string(),
        },
        Some("boolean" | "bool") => match raw.trim().to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => string(),
        },
        Some("object" | "array" | "dict" | "list") => json()
            .or_else(|| python_literal::parse_value(raw).ok())
            .unwrap_or_else(string),
        Some("null") if raw.trim() == "null" => Value::Null,
        Some("null") => string(),
        // No schema for it: JSON if it is JSON (`3`, `true`, `[1]`), else the text (`Paris`).
        _ => json().unwrap_or_else(string),
    }
}

fn block_call(block: &Block<'_>, tools: &[ToolSchema]) -> ToolCall {
    let mut args = Map::new();
    for (key, raw) in parameters(block.body) {
        args.insert(
            key.to_string(),
            convert(raw, param_type(tools, block.name, key)),
        );
    }
    ToolCall {
        name: block.name.to_string(),
        // Serializing a map of JSON values cannot fail; "{}" only guards the impossible case.
        arguments: serde_json::to_string(&Value::Object(args)).unwrap_or_else(|_| "{}".into()),
    }
}

fn section_start(text: &str) -> Option<usize> {
    MARKERS.iter().filter_map(|m| text.find(m)).min()
}

/// Content is the text before the first `<tool_call>` (or bare `<function=`); with no function
/// block the whole text is content.
pub(crate) fn parse(text: &str, tools: &[ToolSchema]) -> ParsedToolCalls {
    let Some(start) = section_start(text) else {
        return ParsedToolCalls::content_only(text);
    };
    let blocks = blocks(&text[start..]);
    if blocks.is_empty() {
        return ParsedToolCalls::content_only(text);
    }
    ParsedToolCalls {
        content: crate::non_empty(&text[..start]),
        tool_calls: blocks.iter().map(|b| block_call(b, tools)).collect(),
    }
}

/// Every block is a call, so a call starts as soon as its name is complete; its arguments are
/// sent when the block closes.
pub(crate) fn partial(section: &str, tools: &[ToolSchema]) -> Vec<PartialCall> {
    blocks(section)
        .iter()
        .map(|b| PartialCall {
            name: b.name.to_string(),
            arguments: b.closed.then(|| block_call(b, tools).arguments),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::test_support::{assert_stream_equal, call};
    use crate::{ParsedToolCalls, StreamEvent, ToolParserKind, ToolSchema};
    use serde_json::json;

    fn tools() -> Vec<ToolSchema> {
        vec![ToolSchema {
            name: "get_weather".into(),
            parameters: json!({"type": "object", "properties": {
                "city": {"type": "string"}, "days": {"type": "integer"}, "metric": {"type": "boolean"},
                "hours": {"type": "array"}, "opts": {"type": "object"}, "ratio": {"type": ["number", "null"]},
                "zip": {"type": "string"}
            }}),
        }]
    }

    fn parse(text: &str) -> ParsedToolCalls {
        ToolParserKind::Qwen3Xml.parse(text, &tools())
    }

    const ONE: &str = "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>";
    const TYPED: &str = "I'll check.\n<tool_call>\n<function=get_weather>\n<parameter=zip>\n01234\n</parameter>\n<parameter=metric>\nTrue\n</parameter>\n<parameter=hours>\n[9, 12]\n</parameter>\n<parameter=opts>\n{'deep': None}\n</parameter>\n<parameter=ratio>\n0.5\n</parameter>\n<parameter=days>\nthree\n</parameter>\n</function>\n</tool_call>\n<tool_call>\n<function=other>\n<parameter=x>\n12\n</parameter>\n<parameter=y>\nmulti\nline\n\n</parameter>\n</function>\n</tool_call>";
    const BARE: &str =
        "<function=get_weather>\n<parameter=city>\nNew York\n</parameter>\n</function>";
    const UNTERMINATED: &str = "<tool_call>\n<function=get_weather>\n<parameter=city>\nRome";
    const PLAIN: &str = "Use <tool_call> tags? No.";

    #[test]
    fn parses_and_types_parameters() {
        assert_eq!(
            parse(ONE),
            ParsedToolCalls {
                content: None,
                tool_calls: vec![call("get_weather", r#"{"city":"Paris","days":3}"#)]
            }
        );
        let typed = parse(TYPED);
        assert_eq!(typed.content.as_deref(), Some("I'll check.\n"));
        assert_eq!(
            typed.tool_calls,
            vec![
                call(
                    "get_weather",
                    r#"{"zip":"01234","metric":true,"hours":[9,12],"opts":{"deep":null},"ratio":0.5,"days":"three"}"#
                ),
                call("other", "{\"x\":12,\"y\":\"multi\\nline\\n\"}"),
            ]
        );
        assert_eq!(
            parse(BARE).tool_calls,
            vec![call("get_weather", r#"{"city":"New York"}"#)]
        );
        assert_eq!(
            parse(UNTERMINATED).tool_calls,
            vec![call("get_weather", r#"{"city":"Rome"}"#)]
        );
        assert_eq!(parse(PLAIN), ParsedToolCalls::content_only(PLAIN));
    }

    #[test]
    fn streaming_equals_parse() {
        for text in [
            ONE,
            TYPED,
            BARE,
            UNTERMINATED,
            PLAIN,
            "<tool_call>\n<function=",
            "<func",
        ] {
            assert_stream_equal(ToolParserKind::Qwen3Xml, &tools(), text);
        }
    }

    #[test]
    fn start_is_sent_when_the_name_is_known() {
        let mut s = ToolParserKind::Qwen3Xml.streamer(tools());
        assert!(s.push("<tool_call>\n<function=get_wea").is_empty());
        assert_eq!(
            s.push("ther>\n<parameter=city>\nPa"),
            vec![StreamEvent::ToolCallStart {
                index: 0,
                name: "get_weather".into()
            }]
        );
        assert!(s.push("ris\n</parameter>\n").is_empty());
        assert_eq!(
            s.push("</function>"),
            vec![StreamEvent::ToolCallArguments {
                index: 0,
                fragment: r#"{"city":"Paris"}"#.into()
            }]
        );
        assert!(s.finish().is_empty());
    }
}
