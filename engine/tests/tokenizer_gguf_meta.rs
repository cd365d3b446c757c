//! Tokenizers built from hand-written GGUF metadata: a tiny sentencepiece ("llama") vocabulary,
//! whose expected ids are worked out by hand below (no llama-vocabulary model is available to
//! compare with), and broken metadata, which must give a `LoadError` naming the file.

use std::path::{Path, PathBuf};

use engine::gguf::GgufFile;
use engine::tokenizer::Tokenizer;
use engine::LoadError;

/// One GGUF metadata value, in the file's own type tags.
enum Kv {
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    StrArray(Vec<String>),
    I32Array(Vec<i32>),
    F32Array(Vec<f32>),
    U32Array(Vec<u32>),
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A metadata-only GGUF v3 file (no tensors).
fn write_gguf(dir: &Path, name: &str, kvs: &[(&str, Kv)]) -> PathBuf {
    let mut out = b"GGUF".to_vec();
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&(kvs.len() as u64).to_le_bytes());
    for (key, value) in kvs {
        put_str(&mut out, key);
        let array = |out: &mut Vec<u8>, ty: u32, n: usize| {
            out.extend_from_slice(&9u32.to_le_bytes());
            out.extend_from_slice(&ty.to_le_bytes());
            out.extend_from_slice(&(n as u64).to_le_bytes());
        };
        match value {
            Kv::U32(v) => {
                out.extend_from_slice(&4u32.to_le_bytes());
                out.extend_from_slice(&v.to_le_bytes());
            }
            Kv::I32(v) => {
                out.extend_from_slice(&5u32.to_le_bytes());
                out.extend_from_slice(&v.to_le_bytes());
            }
            Kv::F32(v) => {
                out.extend_from_slice(&6u32.to_le_bytes());
                out.extend_from_slice(&v.to_le_bytes());
            }
            Kv::Bool(v) => {
                out.extend_from_slice(&7u32.to_le_bytes());
                out.push(u8::from(*v));
            }
            Kv::Str(s) => {
                out.extend_from_slice(&8u32.to_le_bytes());
                put_str(&mut out, s);
            }
            Kv::StrArray(items) => {
                array(&mut out, 8, items.len());
                items.iter().for_each(|s| put_str(&mut out, s));
            }
            Kv::I32Array(items) => {
                array(&mut out, 5, items.len());
                items
                    .iter()
                    .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
            }
            Kv::F32Array(items) => {
                array(&mut out, 6, items.len());
                items
                    .iter()
                    .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
            }
            Kv::U32Array(items) => {
                array(&mut out, 4, items.len());
                items
                    .iter()
                    .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
            }
        }
    }
    let path = dir.join(name);
    std::fs::write(&path, out).unwrap();
    path
}

fn strs(items: &[&str]) -> Kv {
    Kv::StrArray(items.iter().map(|s| s.to_string()).collect())
}

/// (text, token type, score). Scores decide merge order: sentencepiece merges the adjacent pair
/// whose merged piece scores highest.
const SPM_VOCAB: &[(&str, i32, f32)] = &[
    ("<unk>", 2, 0.0),  // 0
    ("<s>", 3, 0.0),    // 1
    ("</s>", 3, 0.0),   // 2
    ("<0x0A>", 6, 0.0), // 3
    ("<0xC3>", 6, 0.0), // 4
    ("<0xA9>", 6, 0.0), // 5
    ("▁", 1, -1.0),     // 6
    ("h", 1, -2.0),     // 7
    ("e", 1, -3.0),     // 8
    ("l", 1, -4.0),     // 9
    ("o", 1, -5.0),     // 10
    ("w", 1, -6.0),     // 11
    ("r", 1, -7.0),     // 12
    ("d", 1, -8.0),     // 13
    ("ll", 1, -9.0),    // 14
    ("▁h", 1, -10.0),   // 15
    ("el", 1, -11.0),   // 16
    ("ell", 1, -12.0),  // 17
    ("ello", 1, -13.0), // 18
    ("▁w", 1, -14.0),   // 19
    ("or", 1, -15.0),   // 20
    ("▁wor", 1, -16.0), // 21
    ("ld", 1, -17.0),   // 22
    ("he", 1, -18.0),   // 23
    ("<tool>", 4, 0.0), // 24
    ("[PAD]", 5, 0.0),  // 25
];

fn spm_file(dir: &Path, add_space_prefix: bool, add_bos: bool) -> PathBuf {
    write_gguf(
        dir,
        &format!("spm-{add_space_prefix}-{add_bos}.gguf"),
        &[
            ("general.architecture", Kv::Str("llama".into())),
            ("tokenizer.ggml.model", Kv::Str("llama".into())),
            (
                "tokenizer.ggml.tokens",
                Kv::StrArray(SPM_VOCAB.iter().map(|t| t.0.to_string()).collect()),
            ),
            (
                "tokenizer.ggml.token_type",
                Kv::I32Array(SPM_VOCAB.iter().map(|t| t.1).collect()),
            ),
            (
                "tokenizer.ggml.scores",
                Kv::F32Array(SPM_VOCAB.iter().map(|t| t.2).collect()),
            ),
            ("tokenizer.ggml.bos_token_id", Kv::U32(1)),
            ("tokenizer.ggml.eos_token_id", Kv::U32(2)),
            ("tokenizer.ggml.unknown_token_id", Kv::U32(0)),
            ("tokenizer.ggml.padding_token_id", Kv::I32(-1)),
            ("tokenizer.ggml.add_bos_token", Kv::Bool(add_bos)),
            (
                "tokenizer.ggml.add_space_prefix",
                Kv::Bool(add_space_prefix),
            ),
            (
                "tokenizer.chat_template",
                Kv::Str("{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}".into()),
            ),
        ],
    )
}

fn load(path: &Path) -> Result<Tokenizer, LoadError> {
    Tokenizer::from_gguf(&GgufFile::open(path).unwrap())
}

#[test]
fn sentencepiece_merges_follow_scores() {
    let dir = tempfile::tempdir().unwrap();
    let tok = load(&spm_file(dir.path(), true, true)).unwrap();
    // "hello world" → "▁hello▁world" (prefix + spaces as ▁), one BPE word. Merges by score:
    // ll(-9), ▁h(-10), e+ll=ell(-12; beats el(-11), which no longer has a pair), ell+o=ello(-13),
    // ▁w(-14), or(-15), ▁w+or=▁wor(-16), ld(-17). "▁hello" and "▁world" are not pieces, so
    // the result is ▁h|ello|▁wor|ld.
    assert_eq!(
        tok.encode("hello world", false).unwrap(),
        vec![15, 18, 21, 22]
    );
    assert_eq!(tok.decode(&[15, 18, 21, 22], false).unwrap(), "hello world");
    // add_bos_token: BOS first, only when special tokens are requested.
    assert_eq!(tok.encode("hello", true).unwrap(), vec![1, 15, 18]);
    assert!(tok.add_bos_token());
    assert!(!tok.add_eos_token());
    // "é" and "\n" are not pieces: their UTF-8 bytes fall back to <0xNN> tokens, and decoding
    // glues the bytes back into characters.
    assert_eq!(tok.encode("hé\n", false).unwrap(), vec![15, 4, 5, 3]);
    assert_eq!(tok.decode(&[15, 4, 5, 3], false).unwrap(), "hé\n");
    // "z" has neither a piece nor a byte token: unknown, and a run of them is one <unk>.
    assert_eq!(tok.encode("hzz", false).unwrap(), vec![15, 0]);
    // Special-token text is the token; the text after it gets the ▁ prefix again (llama.cpp and
    // transformers' GGUF loader both do this).
    assert_eq!(tok.encode("<s>hello", false).unwrap(), vec![1, 15, 18]);
    assert_eq!(tok.decode(&[1, 15, 18], false).unwrap(), "<s> hello");
    assert_eq!(tok.decode(&[1, 15, 18, 2], true).unwrap(), "hello");
    // A user-defined token is matched whole but is not special.
    assert_eq!(tok.encode("hello<tool>", false).unwrap(), vec![15, 18, 24]);
    assert_eq!(tok.decode(&[15, 18, 24], true).unwrap(), "hello<tool>");
    assert_eq!(tok.special_token_ids(), &[0, 1, 2]);
    assert_eq!(
        (tok.bos_token(), tok.eos_token()),
        (Some("<s>"), Some("</s>"))
    );
    assert_eq!(tok.vocab_size(), SPM_VOCAB.len());

    // Through tokenizer.json + tokenizer_config.json and back: same behaviour.
    let json = dir.path().join("tokenizer.json");
    let config = dir.path().join("tokenizer_config.json");
    std::fs::write(&json, tok.to_hf_json().unwrap()).unwrap();
    std::fs::write(&config, tok.to_hf_config_json().unwrap()).unwrap();
    let back = Tokenizer::from_hf_files(&json, Some(&config)).unwrap();
    for text in [
        "hello world",
        "hé\n",
        "<s>hello",
        "hello<tool>",
        " hello  world ",
    ] {
        assert_eq!(
            back.encode(text, true).unwrap(),
            tok.encode(text, true).unwrap(),
            "{text:?}"
        );
    }
    assert_eq!(back.chat_template(), tok.chat_template());
    // The config's add_bos_token wins over what tokenizer.json's post-processor does, as in
    // transformers.
    let no_bos = dir.path().join("no_bos_config.json");
    std::fs::write(&no_bos, r#"{"bos_token": "<s>", "add_bos_token": false}"#).unwrap();
    let plain = Tokenizer::from_hf_files(&json, Some(&no_bos)).unwrap();
    assert!(!plain.add_bos_token());
    assert_eq!(plain.encode("hello", true).unwrap(), vec![15, 18]);
    let rendered = back
        .compile_chat_template()
        .unwrap()
        .unwrap()
        .render(
            &[serde_json::json!({"role": "user", "content": "hi"})],
            false,
            &Default::default(),
        )
        .unwrap();
    assert_eq!(rendered, "<s>hi");
}

#[test]
fn sentencepiece_without_space_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let tok = load(&spm_file(dir.path(), false, false)).unwrap();
    // "hello": ll(-9) first, then e+ll=ell(-12) beats h+e=he(-18), then ello; h+ello is no piece.
    assert_eq!(tok.encode("hello", true).unwrap(), vec![7, 18]);
    assert_eq!(tok.decode(&[7, 18], false).unwrap(), "hello");
    // Spaces still become ▁, but no leading space is added or stripped.
    assert_eq!(tok.encode(" world", false).unwrap(), vec![21, 22]);
    assert_eq!(tok.decode(&[21, 22], false).unwrap(), " world");
}

type Metadata = Vec<(&'static str, Kv)>;

fn minimal_gpt2(extra: Metadata) -> Metadata {
    let mut kvs = vec![
        ("tokenizer.ggml.model", Kv::Str("gpt2".into())),
        ("tokenizer.ggml.pre", Kv::Str("qwen2".into())),
    ];
    kvs.extend(extra);
    kvs
}

/// A load error of the tokenizer kind that names `path` and says `what`.
fn assert_tokenizer_error(result: Result<Tokenizer, LoadError>, path: &Path, what: &str) {
    match result {
        Err(e @ LoadError::Tokenizer { .. }) => {
            let LoadError::Tokenizer { path: p, msg } = &e else {
                unreachable!()
            };
            assert_eq!(p, path);
            assert!(msg.contains(what), "message {msg:?} lacks {what:?}");
            assert!(e.to_string().contains(&path.display().to_string()));
        }
        Err(other) => panic!("expected LoadError::Tokenizer, got {other:?}"),
        Ok(_) => panic!("expected an error containing {what:?}"),
    }
}

#[test]
fn gpt2_vocabulary_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_gguf(
        dir.path(),
        "ok.gguf",
        &minimal_gpt2(vec![
            (
                "tokenizer.ggml.tokens",
                strs(&["a", "b", "ab", "Ġ", "Ġab", "<|end|>"]),
            ),
            (
                "tokenizer.ggml.token_type",
                Kv::I32Array(vec![1, 1, 1, 1, 1, 3]),
            ),
            ("tokenizer.ggml.merges", strs(&["a b", "Ġ ab"])),
            ("tokenizer.ggml.eos_token_id", Kv::U32(5)),
        ]),
    );
    let tok = load(&path).unwrap();
    assert_eq!(tok.encode("ab ab<|end|>", true).unwrap(), vec![2, 4, 5]);
    assert_eq!(tok.decode(&[2, 4, 5], false).unwrap(), "ab ab<|end|>");
    assert_eq!(tok.decode(&[2, 4, 5], true).unwrap(), "ab ab");
    assert_eq!(tok.bos_token_id(), None);
    assert!(tok.chat_template().is_none());
}

#[test]
fn broken_gguf_metadata_is_a_load_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tokens = || strs(&["a", "b", "ab"]);
    let cases: Vec<(&str, Metadata, &str)> = vec![
        (
            "none.gguf",
            vec![("general.architecture", Kv::Str("llama".into()))],
            "tokenizer.ggml.model",
        ),
        (
            "model-type.gguf",
            vec![("tokenizer.ggml.model", Kv::U32(2))],
            "not a string",
        ),
        (
            "bert.gguf",
            vec![
                ("tokenizer.ggml.model", Kv::Str("bert".into())),
                ("tokenizer.ggml.tokens", tokens()),
            ],
            "bert",
        ),
        (
            "no-tokens.gguf",
            minimal_gpt2(vec![("tokenizer.ggml.merges", strs(&["a b"]))]),
            "tokenizer.ggml.tokens",
        ),
        (
            "tokens-type.gguf",
            minimal_gpt2(vec![("tokenizer.ggml.tokens", Kv::U32Array(vec![1, 2]))]),
            "not an array of strings",
        ),
        (
            "empty.gguf",
            minimal_gpt2(vec![("tokenizer.ggml.tokens", strs(&[]))]),
            "empty",
        ),
        (
            "no-merges.gguf",
            minimal_gpt2(vec![("tokenizer.ggml.tokens", tokens())]),
            "tokenizer.ggml.merges",
        ),
        (
            "types-len.gguf",
            minimal_gpt2(vec![
                ("tokenizer.ggml.tokens", tokens()),
                ("tokenizer.ggml.token_type", Kv::I32Array(vec![1, 1])),
                ("tokenizer.ggml.merges", strs(&["a b"])),
            ]),
            "2 token types for 3 tokens",
        ),
        (
            "types-kind.gguf",
            minimal_gpt2(vec![
                ("tokenizer.ggml.tokens", tokens()),
                ("tokenizer.ggml.token_type", tokens()),
            ]),
            "token_type",
        ),
        (
            "merge-oov.gguf",
            minimal_gpt2(vec![
                ("tokenizer.ggml.tokens", tokens()),
                ("tokenizer.ggml.merges", strs(&["a c"])),
            ]),
            "invalid BPE",
        ),
        (
            "merge-space.gguf",
            minimal_gpt2(vec![
                ("tokenizer.ggml.tokens", tokens()),
                ("tokenizer.ggml.merges", strs(&["ab"])),
            ]),
            "no space",
        ),
        (
            "bos-range.gguf",
            minimal_gpt2(vec![
                ("tokenizer.ggml.tokens", tokens()),
                ("tokenizer.ggml.merges", strs(&["a b"])),
                ("tokenizer.ggml.bos_token_id", Kv::U32(3)),
            ]),
            "bos_token_id",
        ),
        (
            "flag-type.gguf",
            minimal_gpt2(vec![
                ("tokenizer.ggml.tokens", tokens()),
                ("tokenizer.ggml.merges", strs(&["a b"])),
                ("tokenizer.ggml.add_bos_token", Kv::U32(1)),
            ]),
            "add_bos_token",
        ),
        (
            "template-type.gguf",
            minimal_gpt2(vec![
                ("tokenizer.ggml.tokens", tokens()),
                ("tokenizer.ggml.merges", strs(&["a b"])),
                ("tokenizer.chat_template", Kv::F32(1.0)),
            ]),
            "chat_template",
        ),
        (
            "scores-len.gguf",
            vec![
                ("tokenizer.ggml.model", Kv::Str("llama".into())),
                ("tokenizer.ggml.tokens", tokens()),
                ("tokenizer.ggml.scores", Kv::F32Array(vec![0.0])),
            ],
            "1 scores for 3 tokens",
        ),
    ];
    for (name, kvs, what) in cases {
        let path = write_gguf(d, name, &kvs);
        assert_tokenizer_error(load(&path), &path, what);
    }
}

#[test]
fn broken_hf_files_are_load_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let missing = d.join("missing.json");
    match Tokenizer::from_hf_files(&missing, None) {
        Err(LoadError::Io { path, .. }) => assert_eq!(path, missing),
        other => panic!("expected an Io error, got {other:?}"),
    }
    let corrupt = d.join("corrupt.json");
    std::fs::write(&corrupt, "{\"model\": 3").unwrap();
    assert_tokenizer_error(
        Tokenizer::from_hf_files(&corrupt, None),
        &corrupt,
        "tokenizer.json",
    );

    // A valid tokenizer.json from a tiny GGUF, with broken configs beside it.
    let gguf = write_gguf(
        d,
        "ok.gguf",
        &minimal_gpt2(vec![
            ("tokenizer.ggml.tokens", strs(&["a", "b", "ab"])),
            ("tokenizer.ggml.merges", strs(&["a b"])),
        ]),
    );
    let json = d.join("tokenizer.json");
    std::fs::write(&json, load(&gguf).unwrap().to_hf_json().unwrap()).unwrap();
    for (name, text, what) in [
        ("c1.json", "[1, 2]", "JSON object"),
        ("c2.json", "{\"eos_token\": ", "invalid JSON"),
        ("c3.json", "{\"eos_token\": \"<|nope|>\"}", "<|nope|>"),
        ("c4.json", "{\"chat_template\": 5}", "chat_template"),
        (
            "c5.json",
            "{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"x\"}]}",
            "default",
        ),
    ] {
        let config = d.join(name);
        std::fs::write(&config, text).unwrap();
        assert_tokenizer_error(
            Tokenizer::from_hf_files(&json, Some(&config)),
            &config,
            what,
        );
    }
    // AddedToken-object form of a special token, and the named-template list form.
    let config = d.join("good.json");
    std::fs::write(
        &config,
        r#"{"eos_token": {"content": "ab", "special": true}, "add_eos_token": true,
            "chat_template": [{"name": "default", "template": "T"}]}"#,
    )
    .unwrap();
    let tok = Tokenizer::from_hf_files(&json, Some(&config)).unwrap();
    assert_eq!(tok.eos_token_id(), Some(2));
    assert!(tok.add_eos_token());
    assert_eq!(tok.encode("a", true).unwrap(), vec![0, 2]);
    assert_eq!(tok.chat_template(), Some("T"));
}
