//! Text targets: chat-template rendering with hostile conversations, and the YAML config
//! loader (`vllmd --config`, `vllm config validate`).

use std::sync::OnceLock;

use daemon::config::{validate_yaml, EnvSettings, ServeConfig};
use engine::tokenizer::ChatTemplate;
use serde_json::{Map, Value};

use crate::seeds;

/// The templates conversations are rendered with: the test models' own (when the model cache
/// has them) and every template of the engine's chat-template golden cases.
fn templates() -> &'static [ChatTemplate] {
    static TEMPLATES: OnceLock<Vec<ChatTemplate>> = OnceLock::new();
    TEMPLATES.get_or_init(|| {
        seeds::chat_template_sources()
            .iter()
            .filter_map(|(src, bos, eos)| {
                ChatTemplate::new(src, bos.as_deref(), eos.as_deref()).ok()
            })
            .collect()
    })
}

/// Input: `{"template": <index or source>, "messages": [...], "add_generation_prompt": b,
/// "kwargs": {...}}`; anything that is not such JSON becomes the content of one user message.
pub fn chat_template(data: &[u8]) {
    let templates = templates();
    let parsed: Option<Map<String, Value>> = serde_json::from_slice(data).ok();
    let Some(obj) = parsed else {
        let text = String::from_utf8_lossy(data);
        let messages = [serde_json::json!({"role": "user", "content": text})];
        for t in templates {
            let _ = t.render(&messages, true, &Map::new());
        }
        return;
    };
    let messages: Vec<Value> = match obj.get("messages") {
        Some(Value::Array(m)) => m.clone(),
        Some(other) => vec![other.clone()],
        None => Vec::new(),
    };
    let add = obj
        .get("add_generation_prompt")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let kwargs = match obj.get("kwargs") {
        Some(Value::Object(k)) => k.clone(),
        _ => Map::new(),
    };
    match obj.get("template") {
        // A hostile template (a model file's metadata is input too): compile and render.
        Some(Value::String(src)) => {
            let _ = daemon::server::content_format::resolve("auto", Some(src));
            if let Ok(t) = ChatTemplate::new(src, Some("<s>"), Some("</s>")) {
                let _ = t.render(&messages, add, &kwargs);
            }
        }
        Some(v) => {
            let i = v.as_u64().unwrap_or(0) as usize;
            if let Some(t) = templates.get(i % templates.len().max(1)) {
                let _ = t.render(&messages, add, &kwargs);
            }
        }
        None => {
            for t in templates {
                let _ = t.render(&messages, add, &kwargs);
            }
        }
    }
}

/// YAML config: the checker (`vllm config validate`) and the loader behind `--config`.
pub fn yaml_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = validate_yaml(&text);
    let _ = ServeConfig::from_yaml(&text, &EnvSettings::default());
}
