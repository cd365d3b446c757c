//! The tokenizer and chat template against transformers' golden data in
//! `tests/fixtures/reference/` (see its README): the GGUF tokenizers of both test models must give
//! the reference ids and decoded text, and the GGUF chat templates the reference prompt text.
//! Tests skip (with a message) when a model file is not in the cache.

use std::path::PathBuf;
use std::sync::OnceLock;

use engine::gguf::GgufFile;
use engine::paths::{test_model, DEFAULT_MODEL_FILE, QWEN_TEST_MODEL_FILE};
use engine::tokenizer::Tokenizer;
use serde_json::Value;

struct Model {
    file: &'static str,
    reference: &'static str,
}

const SMOLLM: Model = Model {
    file: DEFAULT_MODEL_FILE,
    reference: "smollm2-135m-q4_1",
};
const QWEN: Model = Model {
    file: QWEN_TEST_MODEL_FILE,
    reference: "qwen2.5-coder-0.5b",
};

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/reference")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Each model's tokenizer is built once per test binary; `None` when the model is not cached.
fn tokenizer(model: &Model) -> Option<&'static Tokenizer> {
    static SMOL: OnceLock<Option<Tokenizer>> = OnceLock::new();
    static QW: OnceLock<Option<Tokenizer>> = OnceLock::new();
    let cell = if model.file == SMOLLM.file {
        &SMOL
    } else {
        &QW
    };
    cell.get_or_init(|| {
        let path = test_model(model.file)?;
        let gguf = GgufFile::open(&path).unwrap();
        Some(Tokenizer::from_gguf(&gguf).unwrap())
    })
    .as_ref()
}

fn ids_of(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn vectors(model: &Model) -> Vec<Value> {
    fixture(&format!("{}.tokenizer-vectors.json", model.reference))["vectors"]
        .as_array()
        .unwrap()
        .clone()
}

fn prompts(model: &Model) -> Vec<Value> {
    fixture(&format!("{}.dev.json", model.reference))["prompts"]
        .as_array()
        .unwrap()
        .clone()
}

fn check_vectors(model: &Model, tok: &Tokenizer) {
    let vectors = vectors(model);
    assert_eq!(vectors.len(), 60);
    let mut failures = Vec::new();
    for v in &vectors {
        let text = v["text"].as_str().unwrap();
        let want = ids_of(&v["ids"]);
        let got = tok.encode(text, false).unwrap();
        if got != want {
            failures.push(format!(
                "encode #{} {text:?}: got {got:?}, want {want:?}",
                v["idx"]
            ));
        }
        let decoded = tok.decode(&want, false).unwrap();
        if decoded != v["decoded"].as_str().unwrap() {
            failures.push(format!("decode #{} {text:?}: got {decoded:?}", v["idx"]));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn check_prompts(model: &Model, tok: &Tokenizer) {
    let prompts = prompts(model);
    assert_eq!(prompts.len(), 10);
    for p in &prompts {
        assert_eq!(p["add_special_tokens"], Value::Bool(true));
        let got = tok.encode(p["prompt"].as_str().unwrap(), true).unwrap();
        assert_eq!(got, ids_of(&p["prompt_token_ids"]), "prompt {}", p["id"]);
    }
}

fn check_chat(model: &Model, tok: &Tokenizer) {
    let template = tok
        .compile_chat_template()
        .expect("the GGUF has a chat template")
        .unwrap();
    let mut chats = 0;
    for p in prompts(model).iter().filter(|p| p["kind"] == "chat") {
        let messages = p["messages"].as_array().unwrap();
        let mut kwargs = p["chat_template_kwargs"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let add_generation_prompt = kwargs
            .remove("add_generation_prompt")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        assert!(add_generation_prompt);
        let rendered = template
            .render(messages, add_generation_prompt, &kwargs)
            .unwrap();
        assert_eq!(
            rendered,
            p["prompt"].as_str().unwrap(),
            "prompt {}",
            p["id"]
        );
        chats += 1;
    }
    assert_eq!(chats, 3);
}

/// GGUF tokenizer → tokenizer.json + tokenizer_config.json → the same ids, template and specials.
fn check_hf_round_trip(model: &Model, tok: &Tokenizer) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("tokenizer.json");
    let config = dir.path().join("tokenizer_config.json");
    std::fs::write(&json, tok.to_hf_json().unwrap()).unwrap();
    std::fs::write(&config, tok.to_hf_config_json().unwrap()).unwrap();
    let back = Tokenizer::from_hf_files(&json, Some(&config)).unwrap();

    assert_eq!(back.bos_token_id(), tok.bos_token_id());
    assert_eq!(back.eos_token_id(), tok.eos_token_id());
    assert_eq!(back.bos_token(), tok.bos_token());
    assert_eq!(back.eos_token(), tok.eos_token());
    assert_eq!(back.add_bos_token(), tok.add_bos_token());
    assert_eq!(back.chat_template(), tok.chat_template());
    assert_eq!(back.special_token_ids(), tok.special_token_ids());
    for v in vectors(model) {
        let want = ids_of(&v["ids"]);
        assert_eq!(
            back.encode(v["text"].as_str().unwrap(), false).unwrap(),
            want,
            "vector #{}",
            v["idx"]
        );
        assert_eq!(
            back.decode(&want, false).unwrap(),
            v["decoded"].as_str().unwrap()
        );
    }
    for p in prompts(model) {
        let got = back.encode(p["prompt"].as_str().unwrap(), true).unwrap();
        assert_eq!(got, ids_of(&p["prompt_token_ids"]), "prompt {}", p["id"]);
    }
    // Without the config the pipeline alone still tokenizes the same way.
    let bare = Tokenizer::from_hf_files(&json, None).unwrap();
    let chat = &prompts(model)[9];
    assert_eq!(
        bare.encode(chat["prompt"].as_str().unwrap(), true).unwrap(),
        ids_of(&chat["prompt_token_ids"])
    );
}

fn check_facts(model: &Model, tok: &Tokenizer) {
    let meta = &fixture(&format!("{}.tokenizer-vectors.json", model.reference))["tokenizer"];
    assert_eq!(
        tok.bos_token_id(),
        meta["bos_token_id"].as_u64().map(|v| v as u32)
    );
    assert_eq!(
        tok.eos_token_id(),
        meta["eos_token_id"].as_u64().map(|v| v as u32)
    );
    assert_eq!(tok.bos_token(), meta["bos_token"].as_str());
    assert_eq!(tok.eos_token(), meta["eos_token"].as_str());
    assert_eq!(
        tok.add_bos_token(),
        meta["add_bos_token"].as_bool().unwrap()
    );
    let eos = tok.eos_token_id().unwrap();
    assert!(tok.special_token_ids().contains(&eos));
    assert_eq!(tok.token_to_id(tok.eos_token().unwrap()), Some(eos));
    assert_eq!(tok.id_to_token(eos).as_deref(), tok.eos_token());
    // Skipping specials drops the control tokens and keeps the text.
    let ids = tok.encode("<|im_start|>user\nHi<|im_end|>", false).unwrap();
    assert_eq!(tok.decode(&ids, true).unwrap(), "user\nHi");
}

#[test]
fn smollm_vectors() {
    if let Some(tok) = tokenizer(&SMOLLM) {
        assert_eq!(tok.vocab_size(), 49_152);
        check_vectors(&SMOLLM, tok);
    }
}

#[test]
fn qwen_vectors() {
    if let Some(tok) = tokenizer(&QWEN) {
        assert_eq!(tok.vocab_size(), 151_936);
        check_vectors(&QWEN, tok);
    }
}

#[test]
fn smollm_prompts() {
    if let Some(tok) = tokenizer(&SMOLLM) {
        check_prompts(&SMOLLM, tok);
    }
}

#[test]
fn qwen_prompts() {
    if let Some(tok) = tokenizer(&QWEN) {
        check_prompts(&QWEN, tok);
    }
}

#[test]
fn smollm_chat_template() {
    if let Some(tok) = tokenizer(&SMOLLM) {
        check_chat(&SMOLLM, tok);
    }
}

#[test]
fn qwen_chat_template() {
    if let Some(tok) = tokenizer(&QWEN) {
        check_chat(&QWEN, tok);
    }
}

#[test]
fn smollm_hf_round_trip() {
    if let Some(tok) = tokenizer(&SMOLLM) {
        check_hf_round_trip(&SMOLLM, tok);
    }
}

#[test]
fn qwen_hf_round_trip() {
    if let Some(tok) = tokenizer(&QWEN) {
        check_hf_round_trip(&QWEN, tok);
    }
}

#[test]
fn smollm_special_token_facts() {
    if let Some(tok) = tokenizer(&SMOLLM) {
        check_facts(&SMOLLM, tok);
    }
}

#[test]
fn qwen_special_token_facts() {
    if let Some(tok) = tokenizer(&QWEN) {
        check_facts(&QWEN, tok);
    }
}

/// A long conversation with tools and tool calls stays well inside the template's fuel budget.
#[test]
fn qwen_long_conversation_fits_the_fuel() {
    let Some(tok) = tokenizer(&QWEN) else { return };
    let template = tok.compile_chat_template().unwrap().unwrap();
    let tool = serde_json::json!({"type": "function", "function": {"name": "f", "description": "d",
        "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}}});
    let mut messages = vec![serde_json::json!({"role": "system", "content": "sys"})];
    for i in 0..500 {
        messages.push(serde_json::json!({"role": "user", "content": format!("question {i}")}));
        messages.push(serde_json::json!({"role": "assistant", "content": "",
            "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"x": i}}}]}));
        messages.push(serde_json::json!({"role": "tool", "content": format!("result {i}")}));
        messages.push(serde_json::json!({"role": "assistant", "content": format!("answer {i}")}));
    }
    let mut extra = serde_json::Map::new();
    extra.insert("tools".into(), serde_json::Value::Array(vec![tool; 8]));
    let text = template.render(&messages, true, &extra).unwrap();
    assert!(text.starts_with("<|im_start|>system\nsys\n\n# Tools"));
    assert!(text.contains(
        "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 499}}\n</tool_call><|im_end|>\n"
    ));
    assert!(text.ends_with("answer 499<|im_end|>\n<|im_start|>assistant\n"));
}
