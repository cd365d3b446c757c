//! The GGUF reader against gguf-py (the `gguf` package from llama.cpp), which wrote the fixture
//! and computed its expected values: see `scripts/make-gguf-fixture.py`. Also the real models,
//! when they are cached. Corrupt files are in `gguf_corrupt.rs`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use engine::gguf::{GgmlType, GgufError, GgufFile, MetaValue};
use serde_json::Value;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf")
}

fn fixture_path() -> PathBuf {
    fixture_dir().join("tiny.gguf.bin")
}

fn fixture_json() -> Value {
    let text = std::fs::read_to_string(fixture_dir().join("tiny.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn json_u64(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// The JSON description `{"type": ..., "value": ...}` as the MetaValue it must read as.
fn expected_meta(v: &Value) -> MetaValue {
    let val = &v["value"];
    let int = || val.as_i64().unwrap();
    let uint = || val.as_u64().unwrap();
    match v["type"].as_str().unwrap() {
        "U8" => MetaValue::U8(uint().try_into().unwrap()),
        "I8" => MetaValue::I8(int().try_into().unwrap()),
        "U16" => MetaValue::U16(uint().try_into().unwrap()),
        "I16" => MetaValue::I16(int().try_into().unwrap()),
        "U32" => MetaValue::U32(uint().try_into().unwrap()),
        "I32" => MetaValue::I32(int().try_into().unwrap()),
        "U64" => MetaValue::U64(uint()),
        "I64" => MetaValue::I64(int()),
        // The script stores the f32 value widened to f64, so the narrowing is exact.
        "F32" => MetaValue::F32(val.as_f64().unwrap() as f32),
        "F64" => MetaValue::F64(val.as_f64().unwrap()),
        "Bool" => MetaValue::Bool(val.as_bool().unwrap()),
        "String" => MetaValue::String(val.as_str().unwrap().to_string()),
        "Array" => MetaValue::Array(val.as_array().unwrap().iter().map(expected_meta).collect()),
        other => panic!("unknown type {other}"),
    }
}

#[test]
fn fixture_header_and_metadata_match_what_gguf_py_wrote() {
    let json = fixture_json();
    let f = GgufFile::open(&fixture_path()).unwrap();
    assert_eq!(f.path(), fixture_path());
    assert_eq!(u64::from(f.version()), json_u64(&json, "version"));
    assert_eq!(f.data_offset(), json_u64(&json, "data_start"));
    assert_eq!(f.architecture(), Some("llama"));

    let expected = json["metadata"].as_array().unwrap();
    assert_eq!(
        f.metadata().len(),
        expected.len(),
        "keys: {:?}",
        f.metadata().keys()
    );
    for m in expected {
        let key = m["key"].as_str().unwrap();
        assert_eq!(f.get(key), Some(&expected_meta(m)), "metadata `{key}`");
    }

    // The typed accessors.
    assert_eq!(f.get_str("general.name"), Some("tiny fixture \u{2713}"));
    assert_eq!(f.get_str("general.empty"), Some(""));
    assert_eq!(f.get_u64("general.alignment"), Some(64));
    assert_eq!(f.get_u64("test.u8"), Some(200));
    assert_eq!(f.get_u64("test.i8"), None, "negative");
    assert_eq!(f.get("test.i8").and_then(MetaValue::as_i64), Some(-100));
    assert_eq!(f.get_u64("test.u64"), Some((1 << 40) + 3));
    assert_eq!(
        f.get("test.i64").and_then(MetaValue::as_i64),
        Some(-(1 << 40))
    );
    assert_eq!(f.get_f64("test.f32"), Some(f64::from(0.1f32)));
    assert_eq!(f.get_f64("test.f64"), Some(std::f64::consts::PI));
    assert_eq!(f.get_f64("llama.context_length"), Some(2048.0));
    assert_eq!(f.get_f64("llama.rope.freq_base"), Some(10000.0));
    assert_eq!(f.get_bool("test.true"), Some(true));
    assert_eq!(f.get_bool("test.false"), Some(false));
    assert_eq!(f.get_bool("test.u8"), None);
    assert_eq!(
        f.get_str_array("test.str_array"),
        Some(vec!["alpha", "\u{3b2}eta", "", "<0x0A>", "\u{120}the"])
    );
    assert_eq!(f.get_str_array("test.i32_array"), None, "not strings");
    assert_eq!(f.get_str_array("general.name"), None, "not an array");
    assert_eq!(f.get_str("no.such.key"), None);
    let u64s: Vec<_> = f
        .get("test.u64_array")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64())
        .collect();
    assert_eq!(u64s, vec![Some(0), Some((1 << 63) + 5)]);
    let nested = f.get("test.nested").unwrap().as_array().unwrap();
    assert_eq!(nested[1], MetaValue::Array(vec![MetaValue::I32(3)]));
}

#[test]
fn fixture_tensor_infos_match_gguf_py() {
    let json = fixture_json();
    let f = GgufFile::open(&fixture_path()).unwrap();
    let expected = json["tensors"].as_array().unwrap();
    let names: Vec<_> = f.tensors().iter().map(|t| t.name.as_str()).collect();
    let want: Vec<_> = expected
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, want, "file order");
    for t in expected {
        let name = t["name"].as_str().unwrap();
        let info = f.tensor(name).unwrap();
        let ty = GgmlType::from_id(json_u64(t, "type_id") as u32).unwrap();
        assert_eq!(info.ggml_type, ty, "{name}");
        assert_eq!(ty.name(), t["type"].as_str().unwrap());
        let dims: Vec<u64> = t["dims"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        let shape: Vec<usize> = t["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(info.dims, dims, "{name}");
        assert_eq!(info.shape(), shape, "{name}");
        assert_eq!(
            info.n_elements() as u64,
            json_u64(t, "n_elements"),
            "{name}"
        );
        assert_eq!(info.n_bytes() as u64, json_u64(t, "n_bytes"), "{name}");
        assert_eq!(
            f.data_offset() + info.offset,
            json_u64(t, "data_offset"),
            "{name}"
        );
        assert_eq!(info.offset % 64, 0, "{name}: alignment");
        assert_eq!(f.tensor_bytes(info).len(), info.n_bytes());
    }
    assert!(f.tensor("missing").is_none());
}

#[test]
fn fixture_dequantization_equals_gguf_py_bit_for_bit() {
    // Exact equality: ggml's formulas are a few f32 multiplies and adds, done here in the same
    // order as gguf-py's numpy code (numpy float32 arithmetic is plain IEEE single precision, and
    // Rust never fuses into FMA on its own), so any difference at all would be a bug.
    let json = fixture_json();
    let expected_bytes = std::fs::read(fixture_dir().join("tiny.expected.bin")).unwrap();
    let f = GgufFile::open(&fixture_path()).unwrap();
    let mut types_seen = Vec::new();
    for t in json["tensors"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        let start = json_u64(t, "expected_offset") as usize;
        let n = json_u64(t, "n_elements") as usize;
        let want: Vec<f32> = expected_bytes[start..start + 4 * n]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let got = f.dequantize(name).unwrap();
        assert_eq!(got.len(), n, "{name}");
        let mismatches: Vec<_> = (0..n)
            .filter(|&i| got[i].to_bits() != want[i].to_bits())
            .take(5)
            .map(|i| (i, got[i], want[i]))
            .collect();
        assert!(
            mismatches.is_empty(),
            "{name}: (index, ours, gguf-py) {mismatches:?}"
        );
        assert!(got.iter().any(|v| *v != 0.0), "{name} is not all zeros");
        types_seen.push(f.tensor(name).unwrap().ggml_type);
    }
    for ty in [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
    ] {
        assert!(types_seen.contains(&ty), "fixture lacks {ty}");
    }
    assert!(matches!(
        f.dequantize("missing"),
        Err(GgufError::NoSuchTensor { .. })
    ));
}

// ---- the real models --------------------------------------------------------------------------

fn model_samples(file: &str) -> Option<Value> {
    let text = std::fs::read_to_string(fixture_dir().join("model-samples.json")).unwrap();
    let all: Value = serde_json::from_str(&text).unwrap();
    all["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["file"] == file)
        .cloned()
}

/// Checks counts by type, dequantizes every tensor (all finite), times it, and compares the
/// tensors gguf-py sampled.
fn check_model(
    file: &str,
    arch: &str,
    n_tensors: usize,
    counts: &[(GgmlType, usize)],
) -> Option<GgufFile> {
    let path = engine::paths::test_model(file)?;
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.architecture(), Some(arch));
    assert_eq!(f.tensors().len(), n_tensors);
    for &(ty, n) in counts {
        assert_eq!(
            f.tensors().iter().filter(|t| t.ggml_type == ty).count(),
            n,
            "{file}: {ty}"
        );
    }

    // Only the dequantize calls are timed (allocation and first touch of the output included,
    // as at model load), not the checks.
    let mut elapsed = std::time::Duration::ZERO;
    let mut n_values = 0usize;
    for t in f.tensors() {
        let start = Instant::now();
        let values = f.dequantize(&t.name).unwrap();
        elapsed += start.elapsed();
        assert_eq!(values.len(), t.n_elements());
        assert!(
            values.iter().all(|v| v.is_finite()),
            "{file}: {} has non-finite values",
            t.name
        );
        n_values += values.len();
    }
    eprintln!(
        "{file}: dequantized {} tensors ({:.1} M values) in {:.2?} on {} rayon threads",
        n_tensors,
        n_values as f64 / 1e6,
        elapsed,
        rayon::current_num_threads()
    );

    let samples = model_samples(file).unwrap();
    if std::fs::metadata(&path).unwrap().len() != json_u64(&samples, "file_size") {
        engine::paths::missing_test_dependency(&format!(
            "{file}: not the file model-samples.json was made from, so no gguf-py comparison"
        ));
        return Some(f);
    }
    for s in samples["tensors"].as_array().unwrap() {
        let name = s["name"].as_str().unwrap();
        let values = f.dequantize(name).unwrap();
        assert_eq!(
            f.tensor(name).unwrap().ggml_type.name(),
            s["type"].as_str().unwrap()
        );
        let indices = s["indices"].as_array().unwrap();
        let bits = s["bits"].as_array().unwrap();
        for (i, b) in indices.iter().zip(bits) {
            let (i, b) = (i.as_u64().unwrap() as usize, b.as_u64().unwrap() as u32);
            assert_eq!(
                values[i].to_bits(),
                b,
                "{name}[{i}]: {} vs gguf-py {}",
                values[i],
                f32::from_bits(b)
            );
        }
        // Sums differ only by summation order, which is far below this bound.
        let sum: f64 = values.iter().map(|&v| f64::from(v)).sum();
        let (want, scale) = (s["sum"].as_f64().unwrap(), s["sum_abs"].as_f64().unwrap());
        assert!(
            (sum - want).abs() <= 1e-9 * scale,
            "{name}: sum {sum} vs gguf-py {want}"
        );
    }
    Some(f)
}

#[test]
fn smollm2_q4_1_model() {
    use GgmlType::*;
    let file = engine::paths::DEFAULT_MODEL_FILE;
    let Some(f) = check_model(file, "llama", 272, &[(Q4_1, 210), (F32, 61), (Q8_0, 1)]) else {
        return;
    };
    assert_eq!(f.tensor("token_embd.weight").unwrap().ggml_type, Q8_0);
    assert_eq!(
        f.tensor("token_embd.weight").unwrap().shape(),
        vec![49152, 576]
    );
    assert_eq!(
        f.tensor("blk.0.ffn_down.weight").unwrap().shape(),
        vec![576, 1536]
    );
    assert!(f.tensor("output.weight").is_none(), "tied embeddings");
    assert_eq!(f.get_u64("llama.embedding_length"), Some(576));
    assert_eq!(f.get_str("tokenizer.ggml.model"), Some("gpt2"));
    assert_eq!(
        f.get_str_array("tokenizer.ggml.tokens").map(|t| t.len()),
        Some(49152)
    );
}

#[test]
fn qwen2_5_coder_model() {
    use GgmlType::*;
    let file = engine::paths::QWEN_TEST_MODEL_FILE;
    let counts = [(Q8_0, 13), (Q5_0, 133), (F32, 121), (Q6_K, 12), (Q4_K, 12)];
    let Some(f) = check_model(file, "qwen2", 291, &counts) else {
        return;
    };
    assert_eq!(
        f.tensor("token_embd.weight").unwrap().shape(),
        vec![151936, 896]
    );
    assert_eq!(f.get_u64("qwen2.embedding_length"), Some(896));
    assert_eq!(
        f.get_str_array("tokenizer.ggml.tokens").map(|t| t.len()),
        Some(151936)
    );
}
