//! Seed corpora and dictionaries. Seeds come from three places: the small files committed in
//! `fuzz/corpus/<target>/`, the repository's own test fixtures (the gguf-py GGUF, the tiny
//! safetensors checkpoints, the chat-template golden cases, the YAML configs), and, when the
//! model cache has them, the headers of the real test models, re-written with their arrays
//! cut short (the full vocabularies would make every iteration slow).

use std::path::{Path, PathBuf};

use engine::gguf::{GgufFile, MetaValue};
use serde_json::Value;

use crate::gguf_writer::{self, Tensor};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Every file of `fuzz/corpus/<target>/`, sorted by name.
pub fn committed(target: &str) -> Vec<Vec<u8>> {
    files_in(&repo_root().join("fuzz/corpus").join(target), None)
}

fn files_in(dir: &Path, ext: Option<&str>) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| ext.is_none_or(|x| p.extension().is_some_and(|e| e == x)))
        .collect();
    paths.sort();
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

/// The real test models present in the model cache.
pub fn cached_models() -> Vec<PathBuf> {
    let dir = engine::paths::models_dir();
    [
        engine::paths::DEFAULT_MODEL_FILE,
        engine::paths::QWEN_TEST_MODEL_FILE,
    ]
    .iter()
    .map(|f| dir.join(f))
    .filter(|p| p.is_file())
    .collect()
}

/// Arrays of the real headers are cut to this many elements.
const KEEP_TOKENS: usize = 320;

/// A real model's metadata with its token arrays cut to [`KEEP_TOKENS`] (merges kept only
/// where both halves and their join survive, special ids moved into range), plus one small
/// F32 tensor, as a valid GGUF.
fn shrunk_header(path: &Path) -> Option<Vec<u8>> {
    let file = GgufFile::open(path).ok()?;
    let tokens: Vec<&str> = file
        .get_str_array("tokenizer.ggml.tokens")
        .unwrap_or_default()
        .into_iter()
        .take(KEEP_TOKENS)
        .collect();
    let kept: std::collections::HashSet<&str> = tokens.iter().copied().collect();
    let mut meta: Vec<(String, MetaValue)> = Vec::new();
    for (key, value) in file.metadata() {
        let value = match (key.as_str(), value) {
            ("tokenizer.ggml.merges", MetaValue::Array(items)) => MetaValue::Array(
                items
                    .iter()
                    .filter(|m| {
                        m.as_str()
                            .and_then(|m| m.split_once(' '))
                            .is_some_and(|(a, b)| {
                                kept.contains(a)
                                    && kept.contains(b)
                                    && kept.contains(format!("{a}{b}").as_str())
                            })
                    })
                    .cloned()
                    .collect(),
            ),
            (_, MetaValue::Array(items)) => {
                MetaValue::Array(items.iter().take(KEEP_TOKENS).cloned().collect())
            }
            (k, v) if k.starts_with("tokenizer.ggml.") && k.ends_with("_token_id") => {
                match v.as_u64() {
                    Some(id) if id as usize >= KEEP_TOKENS => MetaValue::U32(1),
                    _ => v.clone(),
                }
            }
            (_, v) => v.clone(),
        };
        meta.push((key.clone(), value));
    }
    let data: Vec<u8> = (0..32u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let tensors = [Tensor {
        name: "output_norm.weight".into(),
        dims: vec![32],
        type_id: 0,
        data,
    }];
    Some(gguf_writer::write(&meta, &tensors))
}

/// Hand-made tokenizer vocabularies: a byte-level BPE (gpt2) and a sentencepiece (llama) one.
fn synthetic_tokenizers() -> Vec<Vec<u8>> {
    let s = |v: &str| MetaValue::String(v.into());
    let strs = |v: &[&str]| MetaValue::Array(v.iter().map(|x| s(x)).collect());
    let mut gpt2_tokens: Vec<String> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        .iter()
        .map(|t| t.to_string())
        .collect();
    // The byte-level alphabet GPT-2 uses for printable ASCII, then a few merges.
    gpt2_tokens.extend((b'!'..=b'~').map(|b| (b as char).to_string()));
    gpt2_tokens
        .extend(["Ġ", "Ċ", "he", "ll", "hell", "hello", "Ġw", "or", "Ġwor"].map(String::from));
    let gpt2_refs: Vec<&str> = gpt2_tokens.iter().map(String::as_str).collect();
    let mut types = vec![MetaValue::I32(3); 3];
    types.extend(std::iter::repeat_n(MetaValue::I32(1), gpt2_refs.len() - 3));
    let gpt2 = vec![
        ("general.architecture".into(), s("llama")),
        ("tokenizer.ggml.model".into(), s("gpt2")),
        ("tokenizer.ggml.pre".into(), s("smollm")),
        ("tokenizer.ggml.tokens".into(), strs(&gpt2_refs)),
        ("tokenizer.ggml.token_type".into(), MetaValue::Array(types)),
        (
            "tokenizer.ggml.merges".into(),
            strs(&["h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or"]),
        ),
        ("tokenizer.ggml.bos_token_id".into(), MetaValue::U32(1)),
        ("tokenizer.ggml.eos_token_id".into(), MetaValue::U32(2)),
        (
            "tokenizer.chat_template".into(),
            s("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"),
        ),
    ];
    let spm_tokens = [
        "<unk>", "<s>", "</s>", "<0x00>", "<0x0A>", "<0xFF>", "▁", "▁h", "e", "l", "o", "▁hello",
        "w", "r", "d", "▁world",
    ];
    let scores: Vec<MetaValue> = (0..spm_tokens.len())
        .map(|i| MetaValue::F32(-(i as f32)))
        .collect();
    let mut spm_types = vec![MetaValue::I32(2), MetaValue::I32(3), MetaValue::I32(3)];
    spm_types.extend(std::iter::repeat_n(MetaValue::I32(6), 3));
    spm_types.extend(std::iter::repeat_n(MetaValue::I32(1), spm_tokens.len() - 6));
    let spm = vec![
        ("general.architecture".into(), s("llama")),
        ("tokenizer.ggml.model".into(), s("llama")),
        ("tokenizer.ggml.tokens".into(), strs(&spm_tokens)),
        ("tokenizer.ggml.scores".into(), MetaValue::Array(scores)),
        (
            "tokenizer.ggml.token_type".into(),
            MetaValue::Array(spm_types),
        ),
        ("tokenizer.ggml.bos_token_id".into(), MetaValue::U32(1)),
        ("tokenizer.ggml.eos_token_id".into(), MetaValue::U32(2)),
        ("tokenizer.ggml.unknown_token_id".into(), MetaValue::U32(0)),
        ("tokenizer.ggml.add_bos_token".into(), MetaValue::Bool(true)),
    ];
    vec![
        gguf_writer::write(&gpt2, &[]),
        gguf_writer::write(&spm, &[]),
    ]
}

/// Seeds of the GGUF reader and of the tokenizer builder (the same files).
pub fn gguf(target: &str) -> Vec<Vec<u8>> {
    let mut seeds = committed(target);
    if let Ok(b) = std::fs::read(repo_root().join("engine/tests/fixtures/gguf/tiny.gguf.bin")) {
        seeds.push(b);
    }
    seeds.extend(synthetic_tokenizers());
    seeds.extend(cached_models().iter().filter_map(|p| shrunk_header(p)));
    seeds
}

/// Words of the GGUF format worth splicing in.
pub fn gguf_dictionary() -> Vec<Vec<u8>> {
    let mut words: Vec<Vec<u8>> = [
        "GGUF",
        "general.alignment",
        "general.architecture",
        "tokenizer.ggml.model",
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.token_type",
        "tokenizer.ggml.merges",
        "tokenizer.ggml.scores",
        "tokenizer.ggml.pre",
        "tokenizer.ggml.bos_token_id",
        "tokenizer.chat_template",
        "gpt2",
        "llama",
        "<0x0A>",
        "▁",
        "Ġ",
    ]
    .iter()
    .flat_map(|w| {
        // Both the bare word and as a GGUF string (u64 length first).
        let mut with_len = (w.len() as u64).to_le_bytes().to_vec();
        with_len.extend_from_slice(w.as_bytes());
        [w.as_bytes().to_vec(), with_len]
    })
    .collect();
    // Value-type tags (u32) and array headers (type, then u64 count).
    for ty in 0u32..=13 {
        words.push(ty.to_le_bytes().to_vec());
    }
    let mut array = 9u32.to_le_bytes().to_vec();
    array.extend_from_slice(&8u32.to_le_bytes());
    array.extend_from_slice(&u64::MAX.to_le_bytes());
    words.push(array);
    words
}

/// A small safetensors file: `tensors` as (name, dtype, shape, data).
pub fn safetensors_file(tensors: &[(&str, &str, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let mut offset = 0;
    let mut data = Vec::new();
    for (name, dtype, shape, bytes) in tensors {
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + bytes.len()]}),
        );
        offset += bytes.len();
        data.extend_from_slice(bytes);
    }
    let header = Value::Object(header).to_string();
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&data);
    out
}

pub fn safetensors() -> Vec<Vec<u8>> {
    let mut seeds = committed("safetensors");
    let f32s: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let halves: Vec<u8> = (0..8u16).flat_map(|i| (i * 1000).to_le_bytes()).collect();
    seeds.push(safetensors_file(&[
        ("a.weight", "F32", vec![2, 3], f32s.clone()),
        ("b.weight", "F16", vec![8], halves.clone()),
        ("c.weight", "BF16", vec![2, 2, 2], halves),
    ]));
    seeds.push(safetensors_file(&[(
        "scalar",
        "F32",
        vec![],
        f32s[..4].to_vec(),
    )]));
    seeds.push(safetensors_file(&[(
        "empty",
        "F32",
        vec![0, 5],
        Vec::new(),
    )]));
    seeds.push(safetensors_file(&[("ints", "I64", vec![1], vec![7; 8])]));
    // The smallest real checkpoint of the engine's tiny-model fixtures.
    if let Some(b) = files_in(
        &repo_root().join("engine/tests/fixtures/tiny/qwen3"),
        Some("safetensors"),
    )
    .into_iter()
    .next()
    {
        seeds.push(b);
    }
    seeds
}

pub fn safetensors_dictionary() -> Vec<Vec<u8>> {
    [
        "\"dtype\"",
        "\"shape\"",
        "\"data_offsets\"",
        "\"__metadata__\"",
        "\"F32\"",
        "\"F16\"",
        "\"BF16\"",
        "\"I64\"",
        "\"F8_E4M3\"",
        "[18446744073709551615]",
        "[0,0]",
        "{}",
        "[",
        "]",
        ",",
        "\"",
    ]
    .iter()
    .map(|w| w.as_bytes().to_vec())
    .collect()
}

/// (source, bos, eos) of every chat template worth rendering: the cached models' and those of
/// the engine's golden cases.
pub fn chat_template_sources() -> Vec<(String, Option<String>, Option<String>)> {
    let mut out = Vec::new();
    for path in cached_models() {
        if let Ok(file) = GgufFile::open(&path) {
            if let Some(t) = file.get_str("tokenizer.chat_template") {
                out.push((t.to_string(), Some("<s>".into()), Some("</s>".into())));
            }
        }
    }
    let cases = golden_template_cases();
    for case in &cases {
        if let Some(t) = case["template"].as_str() {
            if !out.iter().any(|(s, _, _)| s == t) {
                out.push((t.to_string(), Some("[BOS]".into()), Some("[EOS]".into())));
            }
        }
    }
    out
}

fn golden_template_cases() -> Vec<Value> {
    let path = repo_root().join("engine/tests/fixtures/chat_template/cases.json");
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v["cases"].as_array().cloned())
        .unwrap_or_default()
}

/// Conversations of the golden cases, each against every template index, and with its own
/// template as a string (hostile templates are input too).
pub fn chat_template() -> Vec<Vec<u8>> {
    let mut seeds = committed("chat_template");
    for (i, case) in golden_template_cases().iter().enumerate() {
        let mut doc = serde_json::json!({
            "template": i,
            "messages": case["messages"],
            "add_generation_prompt": case["add_generation_prompt"],
            "kwargs": case["kwargs"],
        });
        seeds.push(doc.to_string().into_bytes());
        doc["template"] = case["template"].clone();
        seeds.push(doc.to_string().into_bytes());
    }
    seeds
}

/// Every object key and short string of the JSON seeds, plus JSON punctuation: the words a
/// request or a conversation is made of.
pub fn json_dictionary(seeds: &[Vec<u8>]) -> Vec<Vec<u8>> {
    fn walk(v: &Value, out: &mut std::collections::BTreeSet<String>) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    out.insert(k.clone());
                    walk(x, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::String(s) if s.len() <= 40 => {
                out.insert(s.clone());
            }
            _ => {}
        }
    }
    let mut words = std::collections::BTreeSet::new();
    for s in seeds {
        if let Ok(v) = serde_json::from_slice::<Value>(s) {
            walk(&v, &mut words);
        }
    }
    let mut out: Vec<Vec<u8>> = words.into_iter().map(String::into_bytes).collect();
    out.extend(
        [
            "{", "}", "[", "]", ",", ":", "\"", "null", "true", "-1", "1e999", "\\u0000", "\\ud800",
        ]
        .iter()
        .map(|w| w.as_bytes().to_vec()),
    );
    out
}

/// The YAML configs of the daemon's tests (good and bad) and the committed ones.
pub fn yaml() -> Vec<Vec<u8>> {
    let mut seeds = committed("yaml_config");
    let dir = repo_root().join("daemon/tests/fixtures/config");
    seeds.extend(files_in(&dir.join("good"), Some("yaml")));
    seeds.extend(files_in(&dir.join("bad"), Some("yaml")));
    seeds
}

/// Every flag as a YAML key in both spellings, and YAML's own syntax.
pub fn yaml_dictionary() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for (flag, _) in daemon::config::FATES {
        let key = flag.trim_start_matches('-');
        out.push(format!("{key}: ").into_bytes());
        out.push(format!("\n{}: ", key.replace('-', "_")).into_bytes());
    }
    out.extend(
        [
            "\n",
            ": ",
            "- ",
            "&a ",
            "*a",
            "<<: *a",
            "!!binary ",
            "!!str ",
            "---\n",
            "...\n",
            "{",
            "}",
            "[",
            "]",
            "? ",
            "|\n  ",
            ">-\n  ",
            "~",
            "null",
            "yes",
            "0x10",
            "1e400",
            "-.inf",
            ".nan",
            "'",
            "\"",
            "\t",
            "#",
        ]
        .iter()
        .map(|w| w.as_bytes().to_vec()),
    );
    out
}
