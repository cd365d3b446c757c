//! `pythonic` (Llama 3.2 / Llama 4): the whole output is a Python list of calls with keyword
//! arguments, `[get_weather(city="Paris"), add(a=1, b=2.5)]`, optionally wrapped in
//! `<|python_start|>`...`<|python_end|>`.

use crate::python_literal::{Cursor, Invalid, PyResult};
use crate::stream::{strip_leading_tag, PartialCall};
use crate::{ParsedToolCalls, ToolCall};
use serde_json::{Map, Value};

pub(crate) const START: &str = "<|python_start|>";
const END: &str = "<|python_end|>";

/// Parses a call list at the start of `s`; returns the calls and the byte offset after `]`.
fn parse_calls(s: &str) -> PyResult<(Vec<ToolCall>, usize)> {
    let mut c = Cursor::new(s);
    c.skip_ws();
    c.eat('[')?;
    let mut calls = Vec::new();
    loop {
        c.skip_ws();
        if c.peek() == Some(']') {
            c.bump();
            break;
        }
        calls.push(parse_call(&mut c)?);
        c.skip_ws();
        match c.bump() {
            Some(',') => {}
            Some(']') => break,
            _ => return Err(Invalid),
        }
    }
    Ok((calls, c.pos))
}

/// `name(key=value, ...)`: keyword arguments only, values are Python literals.
fn parse_call(c: &mut Cursor<'_>) -> PyResult<ToolCall> {
    let name = c.ident()?.to_string();
    c.skip_ws();
    c.eat('(')?;
    let mut args = Map::new();
    loop {
        c.skip_ws();
        if c.peek() == Some(')') {
            c.bump();
            break;
        }
        let key = c.ident()?.to_string();
        c.skip_ws();
        c.eat('=')?;
        let value = c.value()?;
        args.insert(key, value);
        c.skip_ws();
        match c.bump() {
            Some(',') => {}
            Some(')') => break,
            _ => return Err(Invalid),
        }
    }
    let arguments = serde_json::to_string(&Value::Object(args)).map_err(|_| Invalid)?;
    Ok(ToolCall { name, arguments })
}

/// The list and what follows it, once the wrapper's start tag is stripped.
fn list_and_rest(text: &str) -> Option<(Vec<ToolCall>, &str)> {
    let body = strip_leading_tag(text, START);
    let (calls, end) = parse_calls(body).ok()?;
    Some((calls, body.get(end..).unwrap_or("").trim()))
}

/// Calls if the whole (trimmed) output is a non-empty call list; otherwise all of it is content.
pub(crate) fn parse(text: &str) -> ParsedToolCalls {
    match list_and_rest(text) {
        Some((calls, rest)) if !calls.is_empty() && (rest.is_empty() || rest == END) => {
            ParsedToolCalls {
                content: None,
                tool_calls: calls,
            }
        }
        _ => ParsedToolCalls::content_only(text),
    }
}

/// The calls once the list is closed (a list can still turn out not to be calls until then:
/// `[1, 2]` is content), followed by nothing but the start of the end tag.
pub(crate) fn partial(section: &str) -> Vec<PartialCall> {
    match list_and_rest(section) {
        Some((calls, rest)) if rest.is_empty() || END.starts_with(rest) => calls
            .into_iter()
            .map(|c| PartialCall {
                name: c.name,
                arguments: Some(c.arguments),
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use crate::test_support::{assert_stream_equal, call};
    use crate::{ParsedToolCalls, ToolParserKind};

    fn parse(text: &str) -> ParsedToolCalls {
        ToolParserKind::Pythonic.parse(text, &[])
    }

    const CALLS: &str = r#"[get_weather(city="Paris", unit='c'), add(a=1, b=2.5), noop()]"#;
    const NESTED: &str = "<|python_start|>[search(query='l\\'été \"x\"', filters={'tags': ['a', 'b'], 'limit': None}, exact=True, pair=(1, -2))]<|python_end|>";
    const PLAIN: &str = "Paris is [probably] sunny.";
    const NOT_CALLS: &str = "[1, 2, 3]";
    const TRAILING: &str = "[f(a=1)] and more";

    #[test]
    fn parses_call_lists() {
        assert_eq!(
            parse(CALLS),
            ParsedToolCalls {
                content: None,
                tool_calls: vec![
                    call("get_weather", r#"{"city":"Paris","unit":"c"}"#),
                    call("add", r#"{"a":1,"b":2.5}"#),
                    call("noop", "{}"),
                ]
            }
        );
        assert_eq!(
            parse(NESTED).tool_calls,
            vec![call(
                "search",
                r#"{"query":"l'été \"x\"","filters":{"tags":["a","b"],"limit":null},"exact":true,"pair":[1,-2]}"#
            )]
        );
        assert_eq!(parse(&format!("\n {CALLS} \n")).tool_calls.len(), 3);
    }

    #[test]
    fn other_text_is_content() {
        for text in [
            PLAIN, NOT_CALLS, TRAILING, "[]", "[f(1)]", "[f(a=1)", "[f(a=x)]",
        ] {
            assert_eq!(parse(text), ParsedToolCalls::content_only(text), "{text}");
        }
    }

    #[test]
    fn streaming_equals_parse() {
        for text in [
            CALLS,
            NESTED,
            PLAIN,
            NOT_CALLS,
            "[]",
            "[f(a=1)",
            "<|python_sta",
            " ",
        ] {
            assert_stream_equal(ToolParserKind::Pythonic, &[], text);
        }
    }
}
