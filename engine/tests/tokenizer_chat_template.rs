//! Chat template helpers that Hugging Face templates rely on. The expected renders are in
//! fixtures/chat_template/cases.json, written by transformers' `apply_chat_template` (its
//! Jinja2 environment: trim_blocks, lstrip_blocks, Python `json.dumps` for `tojson`) with
//! fixtures/chat_template/make_cases.py; nothing here is our own output.

use std::path::Path;

use engine::tokenizer::{ChatTemplate, ChatTemplateError};
use serde_json::{json, Map, Value};

fn render(source: &str, messages: Value, extra: Value) -> Result<String, ChatTemplateError> {
    let template = ChatTemplate::new(source, Some("<s>"), Some("</s>"))?;
    let messages = messages.as_array().cloned().unwrap_or_default();
    let extra: Map<String, Value> = extra.as_object().cloned().unwrap_or_default();
    template.render(&messages, true, &extra)
}

fn ok(source: &str, messages: Value, extra: Value) -> String {
    render(source, messages, extra).unwrap()
}

fn transformers_cases() -> Value {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chat_template/cases.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// One case of cases.json rendered with the recorded tokenizer's bos/eos tokens.
fn render_case(fixture: &Value, case: &Value) -> Result<String, ChatTemplateError> {
    let template = ChatTemplate::new(
        case["template"].as_str().unwrap(),
        fixture["bos_token"].as_str(),
        fixture["eos_token"].as_str(),
    )?;
    let messages = case["messages"].as_array().unwrap();
    let extra = case["kwargs"].as_object().unwrap();
    template.render(
        messages,
        case["add_generation_prompt"].as_bool().unwrap(),
        extra,
    )
}

#[test]
fn every_case_renders_as_transformers_does() {
    let fixture = transformers_cases();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 19, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let got = render_case(&fixture, case);
        match (&got, case["expected"].as_str(), case["error"].as_str()) {
            (Ok(text), Some(want), _) if text == want => {}
            // transformers raised: we must fail the render with the template's own message.
            (Err(ChatTemplateError::Raised(msg)), None, Some(want)) if msg == want => {}
            _ => failures.push(format!(
                "{name}: got {got:?}, transformers {}",
                case.get("expected").or(case.get("error")).unwrap()
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn raise_exception_message_is_the_error_text() {
    let fixture = transformers_cases();
    let case = fixture["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "raise_exception")
        .unwrap();
    let err = render_case(&fixture, case).unwrap_err();
    assert_eq!(err.to_string(), case["error"].as_str().unwrap());
}

/// Not in cases.json: the output depends on the day it runs.
#[test]
fn strftime_now_formats_the_current_date() {
    let out = ok(
        "{{ strftime_now('%Y-%m-%d') }}|{{ strftime_now('%d %b %Y') }}",
        json!([]),
        json!({}),
    );
    let (iso, human) = out.split_once('|').unwrap();
    assert_eq!(iso.len(), 10, "{out}");
    let year: i32 = iso[..4].parse().unwrap();
    assert!(year >= 2024, "{out}");
    assert!(human.ends_with(&iso[..4]) && human.len() == 11, "{out}");
}

#[test]
fn templates_are_sandboxed() {
    // No loader: a template cannot pull in files.
    let err = render("{% include '/etc/passwd' %}", json!([]), json!({})).unwrap_err();
    assert!(matches!(err, ChatTemplateError::Render(_)), "{err:?}");
    // Fuel bounds the work of one render: this loop ends in an error instead of running 10^10
    // iterations (a broken fuel limit shows as a hung test, not a timing assertion).
    let src = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
    let err = render(src, json!([]), json!({})).unwrap_err();
    assert!(
        matches!(&err, ChatTemplateError::Render(m) if m.contains("fuel")),
        "{err:?}"
    );
}

#[test]
fn syntax_errors_are_reported_at_compile_time() {
    let err = ChatTemplate::new("{% for m in messages %}{{ m.content }", None, None).unwrap_err();
    assert!(matches!(err, ChatTemplateError::Syntax(_)), "{err:?}");
    // Rendering problems surface as render errors, not panics.
    let err = render(
        "{{ messages[0].content + 1 }}",
        json!([{"content": "x"}]),
        json!({}),
    )
    .unwrap_err();
    assert!(matches!(err, ChatTemplateError::Render(_)), "{err:?}");
}
