//! The fuzz targets: one `pub fn name(data: &[u8])` each, and the table the driver runs.

mod files;
mod requests;
mod text;

pub use files::{gguf, safetensors, tokenizer};
pub use requests::{app as request_app, chat, completions, tokenize};
pub use text::{chat_template, yaml_config};

use crate::driver::{InputKind, Target};
use crate::seeds;

/// Every target, with how its inputs are mutated.
pub const TARGETS: &[Target] = &[
    Target {
        name: "gguf",
        kind: InputKind::Binary,
        run: gguf,
    },
    Target {
        name: "tokenizer",
        kind: InputKind::Binary,
        run: tokenizer,
    },
    Target {
        name: "safetensors",
        kind: InputKind::Binary,
        run: safetensors,
    },
    Target {
        name: "chat_template",
        kind: InputKind::Json,
        run: chat_template,
    },
    Target {
        name: "completions",
        kind: InputKind::Json,
        run: completions,
    },
    Target {
        name: "chat",
        kind: InputKind::Json,
        run: chat,
    },
    Target {
        name: "tokenize",
        kind: InputKind::Json,
        run: tokenize,
    },
    Target {
        name: "yaml_config",
        kind: InputKind::Text,
        run: yaml_config,
    },
];

pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// The seed corpus and the dictionary of a target.
pub fn corpus(name: &str) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    match name {
        "gguf" | "tokenizer" => (seeds::gguf(name), seeds::gguf_dictionary()),
        "safetensors" => (seeds::safetensors(), seeds::safetensors_dictionary()),
        "yaml_config" => (seeds::yaml(), seeds::yaml_dictionary()),
        "chat_template" => {
            let s = seeds::chat_template();
            let d = seeds::json_dictionary(&s);
            (s, d)
        }
        other => {
            let s = seeds::committed(other);
            let d = seeds::json_dictionary(&s);
            (s, d)
        }
    }
}
