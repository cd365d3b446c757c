//! `hermes`: `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>` blocks (Qwen2.5,
//! Hermes, SmolLM2 chat templates).

use crate::stream::PartialCall;
use crate::{call_from_json, ParsedToolCalls, ToolCall};

const START: &str = "<tool_call>";
const END: &str = "</tool_call>";
pub(crate) const MARKERS: &[&str] = &[START];

/// The bodies of the blocks in `section` (which starts at the first `<tool_call>`), each with
/// whether its `</tool_call>` was seen. Text between blocks is ignored; only the last block can
/// be unterminated.
fn blocks(section: &str) -> Vec<(&str, bool)> {
    let mut out = Vec::new();
    let mut rest = section;
    while let Some(pos) = rest.find(START) {
        let after = &rest[pos + START.len()..];
        match after.find(END) {
            Some(end) => {
                out.push((&after[..end], true));
                rest = &after[end + END.len()..];
            }
            None => {
                out.push((after, false));
                break;
            }
        }
    }
    out
}

fn parse_body(body: &str) -> Option<ToolCall> {
    let value = serde_json::from_str(body.trim()).ok()?;
    call_from_json(&value)
}

/// Content is the text before the first `<tool_call>`; if any block is not a valid call, the
/// whole text is content (vLLM's behaviour).
pub(crate) fn parse(text: &str) -> ParsedToolCalls {
    let Some(start) = text.find(START) else {
        return ParsedToolCalls::content_only(text);
    };
    let mut tool_calls = Vec::new();
    for (body, _) in blocks(&text[start..]) {
        match parse_body(body) {
            Some(call) => tool_calls.push(call),
            None => return ParsedToolCalls::content_only(text),
        }
    }
    ParsedToolCalls {
        content: crate::non_empty(&text[..start]),
        tool_calls,
    }
}

/// The terminated, valid blocks at the start of the section.
pub(crate) fn partial(section: &str) -> Vec<PartialCall> {
    blocks(section)
        .into_iter()
        .take_while(|(_, terminated)| *terminated)
        .map_while(|(body, _)| parse_body(body))
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
        ToolParserKind::Hermes.parse(text, &[])
    }

    const ONE: &str = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
    const TWO: &str = "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"°C\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"add\", \"parameters\": {\"a\": 1, \"b\": 2.5}}\n</tool_call>";
    const UNTERMINATED: &str = "<tool_call>\n{\"name\": \"noop\", \"arguments\": {}}\n";
    const INVALID: &str =
        "Sure <tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": }\n</tool_call>";
    const PLAIN: &str = "Hello! <tool> is not a marker, <tool_cal neither.";

    #[test]
    fn parses_blocks() {
        assert_eq!(
            parse(ONE),
            ParsedToolCalls {
                content: None,
                tool_calls: vec![call("get_weather", r#"{"city":"Paris"}"#)]
            }
        );
        let two = parse(TWO);
        assert_eq!(two.content.as_deref(), Some("Let me check.\n"));
        assert_eq!(
            two.tool_calls,
            vec![
                call("get_weather", r#"{"city":"Paris","unit":"°C"}"#),
                call("add", r#"{"a":1,"b":2.5}"#)
            ]
        );
        assert_eq!(parse(UNTERMINATED).tool_calls, vec![call("noop", "{}")]);
    }

    #[test]
    fn invalid_or_absent_calls_are_content() {
        assert_eq!(parse(INVALID), ParsedToolCalls::content_only(INVALID));
        assert_eq!(parse(PLAIN), ParsedToolCalls::content_only(PLAIN));
        assert_eq!(parse(""), ParsedToolCalls::default());
        // An unterminated block whose JSON is cut off is not a call.
        let cut = "<tool_call>\n{\"name\": \"f\", \"argum";
        assert_eq!(parse(cut), ParsedToolCalls::content_only(cut));
    }

    #[test]
    fn streaming_equals_parse() {
        for text in [
            ONE,
            TWO,
            UNTERMINATED,
            INVALID,
            PLAIN,
            "",
            "<",
            "<tool_call>",
            "a<tool_call>\n",
        ] {
            assert_stream_equal(ToolParserKind::Hermes, &[], text);
        }
    }

    #[test]
    fn streams_calls_as_blocks_complete() {
        let mut s = ToolParserKind::Hermes.streamer(vec![]);
        let cut = TWO.find("<tool_call>\n{\"name\": \"add\"").unwrap_or(0);
        let first = s.push(&TWO[..cut]);
        assert!(first
            .iter()
            .any(|e| matches!(e, crate::StreamEvent::ToolCallStart { index: 0, .. })));
        let second = s.push(&TWO[cut..]);
        assert!(second
            .iter()
            .any(|e| matches!(e, crate::StreamEvent::ToolCallStart { index: 1, .. })));
        assert!(s.finish().is_empty());
    }
}
