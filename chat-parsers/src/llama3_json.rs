//! `llama3_json` (also `llama4_json`): Llama 3.1/3.2's JSON tool format, an optional
//! `<|python_tag|>` then JSON objects `{"name": "f", "parameters": {...}}` separated by `; `.

use crate::stream::{strip_leading_tag, PartialCall};
use crate::{call_from_json, ParsedToolCalls, ToolCall};
use serde_json::Value;

pub(crate) const TAG: &str = "<|python_tag|>";

/// Whether the calls after the last complete one are finished, cut off, or malformed.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Done,
    Incomplete,
    Invalid,
}

/// Reads the calls of `text` (tag and leading whitespace included) in order.
fn scan(text: &str) -> (Vec<ToolCall>, Outcome) {
    let s = strip_leading_tag(text, TAG);
    let mut calls = Vec::new();
    let mut pos = 0;
    loop {
        let rest = s[pos..].trim_start();
        pos = s.len() - rest.len();
        if rest.is_empty() {
            return (calls, Outcome::Done);
        }
        if !rest.starts_with('{') {
            return (calls, Outcome::Invalid);
        }
        let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
        match values.next() {
            Some(Ok(value)) => match call_from_json(&value) {
                Some(call) => calls.push(call),
                None => return (calls, Outcome::Invalid),
            },
            Some(Err(e)) if e.is_eof() => return (calls, Outcome::Incomplete),
            _ => return (calls, Outcome::Invalid),
        }
        pos += values.byte_offset();
        // The separator: `;` and/or whitespace.
        let rest = s[pos..].trim_start();
        pos = s.len() - rest.len();
        if rest.starts_with(';') {
            pos += 1;
        }
    }
}

/// Tool calls if the whole output (after the optional tag) is a sequence of valid calls;
/// otherwise all of it is content. Content is `None` when there are calls.
pub(crate) fn parse(text: &str) -> ParsedToolCalls {
    if !strip_leading_tag(text, TAG).starts_with('{') {
        return ParsedToolCalls::content_only(text);
    }
    match scan(text) {
        (calls, Outcome::Done) if !calls.is_empty() => ParsedToolCalls {
            content: None,
            tool_calls: calls,
        },
        _ => ParsedToolCalls::content_only(text),
    }
}

/// The complete calls so far (the section is the whole text).
pub(crate) fn partial(section: &str) -> Vec<PartialCall> {
    let (calls, _) = scan(section);
    calls
        .into_iter()
        .map(|c| PartialCall {
            name: c.name,
            arguments: Some(c.arguments),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::test_support::{assert_stream_equal, call};
    use crate::{ParsedToolCalls, ToolParserKind};

    fn parse(text: &str) -> ParsedToolCalls {
        ToolParserKind::Llama3Json.parse(text, &[])
    }

    const ONE: &str = r#"{"name": "get_weather", "parameters": {"city": "Paris", "days": 3}}"#;
    const TAGGED: &str = r#"<|python_tag|>{"name": "get_weather", "parameters": {"city": "東京"}}; {"name": "add", "arguments": {"a": 1, "b": [1, 2]}}"#;
    const PLAIN: &str = "The weather in Paris is {sunny}.";
    const INVALID: &str = r#"{"name": "get_weather", "parameters": {"city": "#;
    const NOT_A_CALL: &str = r#"{"city": "Paris"}"#;

    #[test]
    fn parses_calls() {
        assert_eq!(
            parse(ONE),
            ParsedToolCalls {
                content: None,
                tool_calls: vec![call("get_weather", r#"{"city":"Paris","days":3}"#)]
            }
        );
        assert_eq!(
            parse(TAGGED).tool_calls,
            vec![
                call("get_weather", r#"{"city":"東京"}"#),
                call("add", r#"{"a":1,"b":[1,2]}"#)
            ]
        );
        assert_eq!(parse(&format!("  \n{ONE}\n")).tool_calls.len(), 1);
        assert_eq!(parse(&format!("{ONE}\n{ONE}")).tool_calls.len(), 2);
    }

    #[test]
    fn non_calls_are_content() {
        for text in [
            PLAIN,
            INVALID,
            NOT_A_CALL,
            "<|python_tag|>print(1)",
            "{} trailing",
        ] {
            assert_eq!(parse(text), ParsedToolCalls::content_only(text), "{text}");
        }
        let trailing = format!("{ONE} hope this helps");
        assert_eq!(parse(&trailing), ParsedToolCalls::content_only(&trailing));
    }

    #[test]
    fn streaming_equals_parse() {
        for text in [
            ONE,
            TAGGED,
            PLAIN,
            INVALID,
            NOT_A_CALL,
            "  ",
            "<|python_ta",
            "<|python_tag|>",
            "{",
        ] {
            assert_stream_equal(ToolParserKind::Llama3Json, &[], text);
        }
    }
}
