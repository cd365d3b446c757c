//! Chat template helpers that Hugging Face templates rely on. Expected strings are what
//! transformers' Jinja2 environment (trim_blocks, lstrip_blocks, Python `json.dumps` for
//! `tojson`) produces for the same template.

use std::time::Instant;

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

#[test]
fn raise_exception_carries_the_message() {
    let src = "{% if messages[0].role != 'user' %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}ok";
    let err = render(
        src,
        json!([{"role": "assistant", "content": "x"}]),
        json!({}),
    )
    .unwrap_err();
    match &err {
        ChatTemplateError::Raised(msg) => {
            assert_eq!(
                msg,
                "Conversation roles must alternate user/assistant/user/assistant/..."
            )
        }
        other => panic!("expected Raised, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "Conversation roles must alternate user/assistant/user/assistant/..."
    );
    assert_eq!(
        ok(src, json!([{"role": "user", "content": "x"}]), json!({})),
        "ok"
    );
}

#[test]
fn tojson_writes_python_json() {
    let tool = json!({
        "type": "function",
        "function": {"name": "get_weather", "description": "Météo <now> & \"later\"",
                     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
    });
    // Python's default separators, key order as given, non-ASCII and <>& kept as is.
    assert_eq!(
        ok(
            "{{ tools[0] | tojson }}",
            json!([]),
            json!({"tools": [tool]})
        ),
        r#"{"type": "function", "function": {"name": "get_weather", "description": "Météo <now> & \"later\"", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}"#
    );
    assert_eq!(
        ok(
            "{{ x | tojson(indent=2) }}",
            json!([]),
            json!({"x": {"a": [1, 2.5], "b": {}, "c": null, "d": true}})
        ),
        "{\n  \"a\": [\n    1,\n    2.5\n  ],\n  \"b\": {},\n  \"c\": null,\n  \"d\": true\n}"
    );
    assert_eq!(
        ok(
            "{{ x | tojson(sort_keys=true, ensure_ascii=true) }}",
            json!([]),
            json!({"x": {"b": "é", "a": 1e-5}})
        ),
        r#"{"a": 1e-05, "b": "\u00e9"}"#
    );
    assert_eq!(
        ok(
            "{{ x | tojson(separators=(',', ':')) }}",
            json!([]),
            json!({"x": {"a": [1, "s"]}})
        ),
        r#"{"a":[1,"s"]}"#
    );
    assert_eq!(
        ok("{{ 'say \"hi\"\n' | tojson }}", json!([]), json!({})),
        r#""say \"hi\"\n""#
    );
}

#[test]
fn loop_controls_and_loop_variables() {
    let src = "{% for m in messages %}{% if m.skip %}{% continue %}{% endif %}{% if m.stop %}{% break %}{% endif %}\
               {{ loop.index0 }}{{ m.content }}{% if not loop.last %},{% endif %}{% endfor %}";
    let messages = json!([{"content": "a"}, {"content": "b", "skip": true}, {"content": "c"}, {"content": "d", "stop": true}, {"content": "e"}]);
    assert_eq!(ok(src, messages, json!({})), "0a,2c,");
}

#[test]
fn python_string_and_dict_methods() {
    let src = "{{ messages[0].content.strip() }}|{{ messages[0].content.startswith('  Hi') }}|\
               {{ messages[0].content.split()|join('+') }}|{{ 'a,b'.split(',')[1] }}|\
               {{ messages[0].content.lstrip().upper() }}|{% for k, v in messages[1].items() %}{{ k }}={{ v }};{% endfor %}|\
               {{ messages[1].get('missing', 'dflt') }}|{{ 'x-y'.replace('-', '_') }}|{{ 'abc'.endswith('c') }}";
    let messages = json!([{"content": "  Hi there \n"}, {"z": 1, "a": 2}]);
    assert_eq!(
        ok(src, messages, json!({})),
        "Hi there|True|Hi+there|b|HI THERE \n|z=1;a=2;|dflt|x_y|True"
    );
}

#[test]
fn variables_like_transformers() {
    // bos/eos from the tokenizer, add_generation_prompt, tools/documents None when absent.
    let src = "{{ bos_token }}{{ eos_token }}|{{ add_generation_prompt }}|{{ tools is none }}|{{ documents is none }}|{{ tools }}|{{ custom }}";
    assert_eq!(
        ok(src, json!([]), json!({})),
        "<s></s>|True|True|True|None|"
    );
    // Extra kwargs are visible and override the special-token variables.
    assert_eq!(
        ok(
            src,
            json!([]),
            json!({"custom": "c", "bos_token": "B", "tools": []})
        ),
        "B</s>|True|False|True|[]|c"
    );
    // `enable_thinking`-style switches.
    let src = "{% if enable_thinking is defined and enable_thinking is false %}<think></think>{% endif %}x";
    assert_eq!(
        ok(src, json!([]), json!({"enable_thinking": false})),
        "<think></think>x"
    );
    assert_eq!(ok(src, json!([]), json!({})), "x");
    // namespace() as templates use it to carry state out of loops.
    let src = "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}";
    assert_eq!(ok(src, json!([{}, {}, {}]), json!({})), "3");
}

#[test]
fn block_whitespace_like_transformers() {
    // trim_blocks drops the newline after a block tag, lstrip_blocks the indent before one, and
    // the trailing newline of the template is dropped.
    let src = "A\n  {% for m in messages %}\n[{{ m.content }}]\n  {% endfor %}\nB\n";
    assert_eq!(
        ok(src, json!([{"content": "x"}, {"content": "y"}]), json!({})),
        "A\n[x]\n[y]\nB"
    );
}

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
fn generation_tags_are_accepted() {
    let src = "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}{% endfor %}";
    assert_eq!(
        ok(
            src,
            json!([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]),
            json!({})
        ),
        "qa"
    );
}

#[test]
fn templates_are_sandboxed() {
    // No loader: a template cannot pull in files.
    let err = render("{% include '/etc/passwd' %}", json!([]), json!({})).unwrap_err();
    assert!(matches!(err, ChatTemplateError::Render(_)), "{err:?}");
    // Fuel bounds the work of one render.
    let start = Instant::now();
    let src = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
    let err = render(src, json!([]), json!({})).unwrap_err();
    assert!(
        matches!(&err, ChatTemplateError::Render(m) if m.contains("fuel")),
        "{err:?}"
    );
    assert!(start.elapsed().as_secs() < 30);
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
