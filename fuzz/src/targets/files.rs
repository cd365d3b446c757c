//! Targets that read files: the GGUF reader, the tokenizer built from GGUF metadata and the
//! safetensors header parser. Each input is written to a per-thread scratch file and opened
//! through the same public entry points the loader uses (`GgufFile::open`,
//! `SafetensorsWeights::open_dir`), so the fuzzed path is exactly the production one.

use std::cell::RefCell;
use std::path::PathBuf;

use engine::gguf::GgufFile;
use engine::loader::SafetensorsWeights;
use engine::model::WeightSource;
use engine::tokenizer::Tokenizer;

thread_local! {
    static SCRATCH: RefCell<Option<tempfile::TempDir>> = const { RefCell::new(None) };
}

/// Writes `data` to `<per-thread scratch dir>/<name>` and returns the folder and the file.
fn scratch_file(name: &str, data: &[u8]) -> (PathBuf, PathBuf) {
    SCRATCH.with(|s| {
        let mut slot = s.borrow_mut();
        if slot.is_none() {
            *slot = Some(tempfile::tempdir().expect("scratch dir for fuzz inputs"));
        }
        let dir = slot
            .as_ref()
            .map(|d| d.path().to_path_buf())
            .unwrap_or_default();
        let path = dir.join(name);
        std::fs::write(&path, data).expect("write fuzz input");
        (dir, path)
    })
}

/// Tensors above this many elements are not dequantized (speed only: their size is already
/// bounded by the file's).
const MAX_DEQUANT_ELEMENTS: usize = 1 << 22;

/// GGUF: open, then read everything an accessor can give out.
pub fn gguf(data: &[u8]) {
    let (_, path) = scratch_file("input.gguf", data);
    let Ok(file) = GgufFile::open(&path) else {
        return;
    };
    for (key, value) in file.metadata() {
        let _ = (file.get_str(key), file.get_u64(key), file.get_f64(key));
        let _ = (
            file.get_bool(key),
            file.get_str_array(key),
            value.as_array(),
        );
    }
    let _ = file.architecture();
    for info in file.tensors() {
        let bytes = file.tensor_bytes(info);
        assert_eq!(bytes.len(), info.n_bytes(), "tensor `{}` bytes", info.name);
        let _ = info.shape();
        if info.n_elements() <= MAX_DEQUANT_ELEMENTS {
            if let Ok(values) = file.dequantize(&info.name) {
                assert_eq!(values.len(), info.n_elements());
            }
        }
    }
}

/// The tokenizer from GGUF metadata, then what the server does with it first: encode,
/// decode (including ids out of range), the chat template.
pub fn tokenizer(data: &[u8]) {
    let (_, path) = scratch_file("tokenizer.gguf", data);
    let Ok(file) = GgufFile::open(&path) else {
        return;
    };
    let Ok(tok) = Tokenizer::from_gguf(&file) else {
        return;
    };
    let text = "Hello <|im_start|> wörld\u{0} \u{1F600}\n\n  12345 <s></s>[INST]";
    for special in [false, true] {
        if let Ok(ids) = tok.encode(text, special) {
            let _ = tok.decode(&ids, false);
            let _ = tok.decode(&ids, true);
        }
    }
    let n = tok.vocab_size() as u32;
    let probe: Vec<u32> = (0..n.min(64))
        .chain([n.saturating_sub(1), n, n + 1, u32::MAX])
        .collect();
    let _ = tok.decode(&probe, false);
    for &id in &probe {
        let _ = tok.id_to_token(id);
    }
    let _ = (
        tok.bos_token_id(),
        tok.eos_token_id(),
        tok.special_token_ids(),
    );
    let _ = tok.to_hf_json();
    let _ = tok.to_hf_config_json();
    if let Some(Ok(template)) = tok.compile_chat_template() {
        let messages = [serde_json::json!({"role": "user", "content": text})];
        let _ = template.render(&messages, true, &Default::default());
    }
}

/// safetensors: open the folder (header parse and offset checks), then load every tensor.
pub fn safetensors(data: &[u8]) {
    let (dir, _) = scratch_file("model.safetensors", data);
    let Ok(weights) = SafetensorsWeights::open_dir(&dir) else {
        return;
    };
    let names: Vec<String> = weights.names().map(str::to_string).collect();
    for name in names {
        if let Ok(Some((shape, values))) = weights.load(&name) {
            assert_eq!(shape.iter().product::<usize>(), values.len(), "{name}");
        }
    }
}
