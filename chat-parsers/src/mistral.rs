//! `mistral`: `[TOOL_CALLS]` then a JSON array of `{"name", "arguments"}` objects (older
//! tokenizers), or `[TOOL_CALLS]name[ARGS]{json}` segments (newer tokenizers).

use crate::stream::PartialCall;
use crate::{call_from_json, ParsedToolCalls, ToolCall};
use serde_json::Value;

const MARKER: &str = "[TOOL_CALLS]";
const ARGS: &str = "[ARGS]";
pub(crate) const MARKERS: &[&str] = &[MARKER];

/// Reads the first JSON value of `s`, which must be followed only by whitespace.
/// `Ok(None)`: the value is cut off (more text may complete it).
fn whole_json(s: &str) -> Result<Option<Value>, ()> {
    let mut values = serde_json::Deserializer::from_str(s).into_iter::<Value>();
    match values.next() {
        Some(Ok(v)) if s[values.byte_offset()..].trim().is_empty() => Ok(Some(v)),
        Some(Err(e)) if e.is_eof() => Ok(None),
        None => Ok(None),
        _ => Err(()),
    }
}

/// The calls of one segment (the text after a `[TOOL_CALLS]`): `Ok(None)` if it is cut off.
fn segment_calls(segment: &str) -> Result<Option<Vec<ToolCall>>, ()> {
    let t = segment.trim();
    if t.starts_with('[') {
        let Some(value) = whole_json(t)? else {
            return Ok(None);
        };
        let Value::Array(items) = value else {
            return Err(());
        };
        return items
            .iter()
            .map(|v| call_from_json(v).ok_or(()))
            .collect::<Result<_, _>>()
            .map(Some);
    }
    let Some(args_at) = t.find(ARGS) else {
        // The name is still being generated.
        return Ok(None);
    };
    let name = t[..args_at].trim();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(());
    }
    match whole_json(&t[args_at + ARGS.len()..])? {
        None => Ok(None),
        Some(args @ Value::Object(_)) => {
            let arguments = serde_json::to_string(&args).map_err(|_| ())?;
            Ok(Some(vec![ToolCall {
                name: name.to_string(),
                arguments,
            }]))
        }
        Some(_) => Err(()),
    }
}

/// Content is the text before the first `[TOOL_CALLS]`; if what follows is not valid calls,
/// the whole text is content.
pub(crate) fn parse(text: &str) -> ParsedToolCalls {
    let Some(start) = text.find(MARKER) else {
        return ParsedToolCalls::content_only(text);
    };
    let mut tool_calls = Vec::new();
    for segment in text[start + MARKER.len()..].split(MARKER) {
        match segment_calls(segment) {
            Ok(Some(calls)) => tool_calls.extend(calls),
            _ => return ParsedToolCalls::content_only(text),
        }
    }
    ParsedToolCalls {
        content: crate::non_empty(&text[..start]),
        tool_calls,
    }
}

/// The calls of the complete segments at the start of the section.
pub(crate) fn partial(section: &str) -> Vec<PartialCall> {
    let body = section.strip_prefix(MARKER).unwrap_or(section);
    let mut out = Vec::new();
    for segment in body.split(MARKER) {
        match segment_calls(segment) {
            Ok(Some(calls)) => out.extend(calls.into_iter().map(|c| PartialCall {
                name: c.name,
                arguments: Some(c.arguments),
            })),
            _ => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::test_support::{assert_stream_equal, call};
    use crate::{ParsedToolCalls, ToolParserKind};

    fn parse(text: &str) -> ParsedToolCalls {
        ToolParserKind::Mistral.parse(text, &[])
    }

    const ARRAY: &str = r#"[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "add", "arguments": {"a": 1, "b": 2}}]"#;
    const SEGMENTS: &str =
        r#"Checking.[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]add[ARGS]{"a": 1}"#;
    const INVALID: &str = r#"[TOOL_CALLS]get_weather[ARGS]{"city": "Par"#;
    const PLAIN: &str = "No tools [TOOL here.";

    #[test]
    fn parses_both_formats() {
        assert_eq!(
            parse(ARRAY),
            ParsedToolCalls {
                content: None,
                tool_calls: vec![
                    call("get_weather", r#"{"city":"Paris"}"#),
                    call("add", r#"{"a":1,"b":2}"#)
                ]
            }
        );
        assert_eq!(
            parse(SEGMENTS),
            ParsedToolCalls {
                content: Some("Checking.".into()),
                tool_calls: vec![
                    call("get_weather", r#"{"city":"Paris"}"#),
                    call("add", r#"{"a":1}"#)
                ]
            }
        );
    }

    #[test]
    fn invalid_is_content() {
        for text in [
            INVALID,
            PLAIN,
            "[TOOL_CALLS]",
            "[TOOL_CALLS]f[ARGS][1]",
            "[TOOL_CALLS][{\"a\": 1}]",
        ] {
            assert_eq!(parse(text), ParsedToolCalls::content_only(text), "{text}");
        }
    }

    #[test]
    fn streaming_equals_parse() {
        for text in [
            ARRAY,
            SEGMENTS,
            INVALID,
            PLAIN,
            "[TOOL_CALLS]",
            "x[TOOL_CALLS]f",
        ] {
            assert_stream_equal(ToolParserKind::Mistral, &[], text);
        }
    }
}
