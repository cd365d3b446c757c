//! The compiler against the default model's real tokenizer: token bytes, every request form,
//! and bad input refused with a reason.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::gguf::GgufFile;
use crate::paths;

fn tokenizer() -> Option<Arc<Tokenizer>> {
    let path = paths::test_model(paths::DEFAULT_MODEL_FILE)?;
    let gguf = GgufFile::open(&path).ok()?;
    Some(Arc::new(Tokenizer::from_gguf(&gguf).ok()?))
}

fn compiler() -> Option<(GrammarCompiler, Arc<Tokenizer>)> {
    let tok = tokenizer()?;
    let eos = tok.eos_token_id().unwrap_or(0);
    let c = GrammarCompiler::new(tok.clone(), tok.vocab_size(), eos).unwrap();
    Some((c, tok))
}

#[test]
fn token_bytes_spell_what_the_tokenizer_encodes() {
    let Some(tok) = tokenizer() else { return };
    let eos = tok.eos_token_id().unwrap_or(0);
    let env = token_env::TokenEnv::shared(tok.clone(), tok.vocab_size(), eos).unwrap();
    let trie = env.tok_trie();
    for text in [
        "Hello, world!",
        " {\"a\": [1, 2.5e-3]}\n\t",
        "naïve café — 日本語 🙂",
        "<|im_start|>",
    ] {
        let ids = tok.encode(text, false).unwrap();
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|&t| {
                let b = trie.token(t).to_vec();
                // Special tokens carry the trie's marker byte before their text.
                if trie.is_special_token(t) {
                    b[1..].to_vec()
                } else {
                    b
                }
            })
            .collect();
        assert_eq!(String::from_utf8_lossy(&bytes), text, "{ids:?}");
    }
}

/// Walks the grammar greedily through the given text's tokens: every one must be allowed.
fn accepts(c: &GrammarCompiler, tok: &Tokenizer, spec: &GrammarSpec, text: &str) -> bool {
    let g = c.compile(spec, &GrammarOptions::default()).unwrap();
    let eos = tok.eos_token_id().unwrap_or(0);
    let mut m = GrammarMatcher::new(g, None, &[], &[eos]);
    let mut ids = tok.encode(text, false).unwrap();
    ids.push(eos);
    for t in ids {
        let mut row = vec![0.0f32; tok.vocab_size()];
        m.apply(&mut row);
        if row[t as usize] == f32::NEG_INFINITY {
            eprintln!(
                "{text:?}: token {t} {:?} refused ({:?})",
                tok.decode(&[t], false),
                m.failure()
            );
            return false;
        }
        m.accept(t);
    }
    if let Some(f) = m.failure() {
        eprintln!("{text:?}: {f}");
    }
    m.failure().is_none()
}

#[test]
fn every_request_form_constrains_and_accepts() {
    let Some((c, tok)) = compiler() else { return };
    let schema = GrammarSpec::JsonSchema(json!({
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
        "required": ["name", "age"]
    }));
    assert!(accepts(&c, &tok, &schema, r#"{"name": "Ada", "age": 36}"#));
    assert!(!accepts(&c, &tok, &schema, r#"{"name": "Ada", "age": -1}"#));
    assert!(!accepts(&c, &tok, &schema, r#"{"name": "Ada"}"#));
    assert!(accepts(
        &c,
        &tok,
        &GrammarSpec::JsonObject,
        r#"{"x": [1, {"y": null}]}"#
    ));
    assert!(!accepts(&c, &tok, &GrammarSpec::JsonObject, "[1]"));
    let rx = GrammarSpec::Regex(r"\d{3}-[A-Z]{2}".into());
    assert!(accepts(&c, &tok, &rx, "123-AB"));
    assert!(!accepts(&c, &tok, &rx, "12-AB"));
    let choice = GrammarSpec::Choice(vec!["positive".into(), "negative".into()]);
    assert!(accepts(&c, &tok, &choice, "negative"));
    assert!(!accepts(&c, &tok, &choice, "neutral"));
    let gbnf =
        GrammarSpec::Grammar("root ::= \"SELECT \" col \" FROM t\"\ncol ::= \"a\" | \"b\"".into());
    assert!(accepts(&c, &tok, &gbnf, "SELECT b FROM t"));
    assert!(!accepts(&c, &tok, &gbnf, "SELECT c FROM t"));
    let lark = GrammarSpec::Grammar("start: \"x\" NUM\nNUM: /[0-9]+/".into());
    assert!(accepts(&c, &tok, &lark, "x42"));
    assert!(!accepts(&c, &tok, &lark, "y42"));
}

#[test]
fn server_switches_change_what_is_allowed() {
    let Some((c, tok)) = compiler() else { return };
    let schema = GrammarSpec::JsonSchema(
        json!({"type": "object", "properties": {"a": {"type": "integer"}}}),
    );
    let eos = tok.eos_token_id().unwrap_or(0);
    let run = |opts: &GrammarOptions, text: &str| {
        let g = c.compile(&schema, opts).unwrap();
        let mut m = GrammarMatcher::new(g, None, &[], &[eos]);
        let mut ids = tok.encode(text, false).unwrap();
        ids.push(eos);
        ids.into_iter().all(|t| {
            let mut row = vec![0.0f32; tok.vocab_size()];
            m.apply(&mut row);
            let ok = row[t as usize] == 0.0;
            m.accept(t);
            ok
        })
    };
    let default = GrammarOptions::default();
    assert!(run(&default, r#"{"a": 1, "b": 2}"#));
    assert!(run(&default, "{ \"a\" :  1 }"));
    let closed = GrammarOptions {
        additional_properties: false,
        ..default.clone()
    };
    assert!(!run(&closed, r#"{"a": 1, "b": 2}"#));
    assert!(run(&closed, r#"{"a": 1}"#));
    let compact = GrammarOptions {
        any_whitespace: false,
        ..default.clone()
    };
    assert!(!run(&compact, "{ \"a\" :  1 }"));
}

#[test]
fn bad_constraints_are_invalid_with_a_reason() {
    let Some((c, _)) = compiler() else { return };
    let opts = GrammarOptions::default();
    let strict = GrammarOptions {
        fallback: false,
        ..opts.clone()
    };
    for (spec, o) in [
        (
            GrammarSpec::JsonSchema(json!({"type": "nonsense"})),
            &strict,
        ),
        (GrammarSpec::JsonSchema(json!([1, 2])), &opts),
        (GrammarSpec::JsonSchema(json!(false)), &opts),
        (
            GrammarSpec::JsonSchema(json!({"$ref": "#/$defs/missing"})),
            &opts,
        ),
        (GrammarSpec::Regex("(unclosed".into()), &opts),
        (GrammarSpec::Regex("a{5,2}".into()), &opts),
        (GrammarSpec::Choice(vec![]), &opts),
        (GrammarSpec::Grammar("start: undefined_rule".into()), &opts),
        (GrammarSpec::Grammar("root ::= \"a".into()), &opts),
        (GrammarSpec::Grammar("   ".into()), &opts),
    ] {
        match c.compile(&spec, o) {
            Err(StructuredOutputError::Invalid { msg, .. }) => assert!(!msg.is_empty()),
            other => panic!("{spec:?}: {other:?}"),
        }
    }
}

#[test]
fn reasoning_gate_holds_the_constraint_until_reasoning_ends() {
    let gate = ReasoningGate {
        start: Some(7),
        end: 8,
    };
    assert!(!matcher::gate_ended_in(&gate, &[1, 2, 3]));
    assert!(!matcher::gate_ended_in(&gate, &[1, 7, 3]));
    assert!(matcher::gate_ended_in(&gate, &[1, 7, 8, 3]));
    assert!(!matcher::gate_ended_in(&gate, &[7, 8, 7]));
    let Some((c, tok)) = compiler() else { return };
    let eos = tok.eos_token_id().unwrap_or(0);
    let g = c
        .compile(
            &GrammarSpec::Choice(vec!["yes".into()]),
            &GrammarOptions::default(),
        )
        .unwrap();
    let mut m = GrammarMatcher::new(g, Some(gate), &[1], &[eos]);
    let mut row = vec![0.0f32; tok.vocab_size()];
    m.apply(&mut row);
    assert!(row.iter().all(|&v| v == 0.0), "no mask while reasoning");
    m.accept(5);
    m.accept(8);
    assert!(m.is_active());
    m.apply(&mut row);
    assert!(row.contains(&f32::NEG_INFINITY));
}
