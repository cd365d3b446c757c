//! The GGUF reader against gguf-py (the `gguf` package from llama.cpp), which wrote the fixture
//! and computed its expected values: see `scripts/make-gguf-fixture.py`. Also corrupt copies of
//! the fixture, and the real models when they are cached.

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
    assert_eq!(f.metadata().len(), expected.len(), "keys: {:?}", f.metadata().keys());
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
    assert_eq!(f.get("test.i64").and_then(MetaValue::as_i64), Some(-(1 << 40)));
    assert_eq!(f.get_f64("test.f32"), Some(f64::from(0.1f32)));
    assert_eq!(f.get_f64("test.f64"), Some(std::f64::consts::PI));
    assert_eq!(f.get_f64("llama.context_length"), Some(2048.0));
    assert_eq!(f.get_f64("llama.rope.freq_base"), Some(10000.0));
    assert_eq!(f.get_bool("test.true"), Some(true));
    assert_eq!(f.get_bool("test.false"), Some(false));
    assert_eq!(f.get_bool("test.u8"), None);
    assert_eq!(f.get_str_array("test.str_array"), Some(vec!["alpha", "\u{3b2}eta", "", "<0x0A>", "\u{120}the"]));
    assert_eq!(f.get_str_array("test.i32_array"), None, "not strings");
    assert_eq!(f.get_str_array("general.name"), None, "not an array");
    assert_eq!(f.get_str("no.such.key"), None);
    let u64s: Vec<_> = f.get("test.u64_array").unwrap().as_array().unwrap().iter().map(|v| v.as_u64()).collect();
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
    let want: Vec<_> = expected.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, want, "file order");
    for t in expected {
        let name = t["name"].as_str().unwrap();
        let info = f.tensor(name).unwrap();
        let ty = GgmlType::from_id(json_u64(t, "type_id") as u32).unwrap();
        assert_eq!(info.ggml_type, ty, "{name}");
        assert_eq!(ty.name(), t["type"].as_str().unwrap());
        let dims: Vec<u64> = t["dims"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
        let shape: Vec<usize> = t["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        assert_eq!(info.dims, dims, "{name}");
        assert_eq!(info.shape(), shape, "{name}");
        assert_eq!(info.n_elements() as u64, json_u64(t, "n_elements"), "{name}");
        assert_eq!(info.n_bytes() as u64, json_u64(t, "n_bytes"), "{name}");
        assert_eq!(f.data_offset() + info.offset, json_u64(t, "data_offset"), "{name}");
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
        let mismatches: Vec<_> =
            (0..n).filter(|&i| got[i].to_bits() != want[i].to_bits()).take(5).map(|i| (i, got[i], want[i])).collect();
        assert!(mismatches.is_empty(), "{name}: (index, ours, gguf-py) {mismatches:?}");
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
    assert!(matches!(f.dequantize("missing"), Err(GgufError::NoSuchTensor { .. })));
}

// ---- corrupt files ----------------------------------------------------------------------------

fn fixture_bytes() -> Vec<u8> {
    std::fs::read(fixture_path()).unwrap()
}

/// Writes `bytes` to a temporary file and opens it; the error must name that file.
fn open_bytes(bytes: &[u8]) -> Result<GgufFile, GgufError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corrupt.gguf");
    std::fs::write(&path, bytes).unwrap();
    let result = GgufFile::open(&path);
    if let Err(e) = &result {
        assert_eq!(e.path(), path);
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    }
    result
}

/// Byte position of the GGUF string `s` (u64 length + bytes) in `bytes`, pointing past it.
fn after_string(bytes: &[u8], s: &str) -> usize {
    let mut pat = (s.len() as u64).to_le_bytes().to_vec();
    pat.extend_from_slice(s.as_bytes());
    let at = bytes.windows(pat.len()).position(|w| w == pat.as_slice()).unwrap_or_else(|| panic!("{s} not found"));
    at + pat.len()
}

fn put_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Position of the fields of tensor `name`'s info: (n_dims, first dim, type, offset).
fn tensor_info_fields(bytes: &[u8], name: &str) -> (usize, usize, usize, usize) {
    let n_dims_at = after_string(bytes, name);
    let n_dims = u32::from_le_bytes(bytes[n_dims_at..n_dims_at + 4].try_into().unwrap()) as usize;
    let type_at = n_dims_at + 4 + 8 * n_dims;
    (n_dims_at, n_dims_at + 4, type_at, type_at + 4)
}

#[test]
fn truncated_copies_are_truncated_errors() {
    let json = fixture_json();
    let bytes = fixture_bytes();
    let infos = json_u64(&json, "tensor_infos_start") as usize;
    let data = json_u64(&json, "data_start") as usize;
    let meta = json_u64(&json, "metadata_start") as usize;
    // gguf-py pads after the last tensor too, so the file may go on past the last data byte.
    let data_end =
        json["tensors"].as_array().unwrap().iter().map(|t| json_u64(t, "data_offset") + json_u64(t, "n_bytes")).max();
    let data_end = data_end.unwrap() as usize;
    let cuts = [
        ("empty file", 0),
        ("inside the magic", 2),
        ("inside the version", 6),
        ("inside the counts", 20),
        ("at the first metadata key", meta + 3),
        ("inside the metadata", (meta + infos) / 2),
        ("inside the tensor infos", (infos + data) / 2),
        ("inside the padding before the data", data - 1),
        ("inside the data", (data + bytes.len()) / 2),
        ("one byte short of the last tensor's end", data_end - 1),
    ];
    for (where_, cut) in cuts {
        match open_bytes(&bytes[..cut]) {
            Err(GgufError::Truncated { what, offset, .. }) => {
                assert!(offset <= bytes.len() as u64, "{where_}: offset {offset}");
                assert!(!what.is_empty());
            }
            other => panic!("cut {where_} (at {cut}): expected Truncated, got {other:?}"),
        }
    }
    assert!(open_bytes(&bytes[..data_end]).is_ok(), "trailing padding is optional");
}

#[test]
fn bad_magic_and_versions() {
    let mut bytes = fixture_bytes();
    bytes[..4].copy_from_slice(b"GGML");
    match open_bytes(&bytes) {
        Err(e @ GgufError::BadMagic { found, .. }) => {
            assert_eq!(&found, b"GGML");
            assert!(e.to_string().contains("not a GGUF file"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    for version in [1u32, 0, 4, 99] {
        let mut bytes = fixture_bytes();
        put_u32(&mut bytes, 4, version);
        match open_bytes(&bytes) {
            Err(GgufError::UnsupportedVersion { version: v, .. }) => assert_eq!(v, version),
            other => panic!("version {version}: {other:?}"),
        }
    }
    // A big-endian file reads as a huge little-endian version; say what it really is.
    let mut bytes = fixture_bytes();
    put_u32(&mut bytes, 4, 3u32.swap_bytes());
    match open_bytes(&bytes) {
        Err(GgufError::Invalid { msg, .. }) => assert!(msg.contains("big-endian"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn absurd_counts_and_lengths_fail_without_allocating() {
    for (what, at) in [("tensor count", 8), ("metadata count", 16)] {
        for count in [1u64 << 60, u64::MAX, 1 << 32] {
            let mut bytes = fixture_bytes();
            put_u64(&mut bytes, at, count);
            match open_bytes(&bytes) {
                Err(GgufError::Truncated { what: w, .. }) => assert!(w.contains(&count.to_string()), "{what}: {w}"),
                other => panic!("{what} {count}: {other:?}"),
            }
        }
    }
    // The first metadata key's length.
    let mut bytes = fixture_bytes();
    put_u64(&mut bytes, 24, 1 << 62);
    assert!(matches!(open_bytes(&bytes), Err(GgufError::Truncated { offset: 32, .. })));
    // A string value's length.
    let mut bytes = fixture_bytes();
    let at = after_string(&bytes, "general.name") + 4;
    put_u64(&mut bytes, at, u64::MAX);
    assert!(matches!(open_bytes(&bytes), Err(GgufError::Truncated { .. })));
    // An array's element count.
    let mut bytes = fixture_bytes();
    let at = after_string(&bytes, "test.str_array") + 4 + 4;
    put_u64(&mut bytes, at, 1 << 61);
    match open_bytes(&bytes) {
        Err(GgufError::Truncated { what, .. }) => assert!(what.contains("test.str_array"), "{what}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn tensor_offsets_past_eof_or_misaligned() {
    let (_, _, _, off_at) = tensor_info_fields(&fixture_bytes(), "q6_k.weight");
    for offset in [1u64 << 20, u64::MAX - 63] {
        let mut bytes = fixture_bytes();
        put_u64(&mut bytes, off_at, offset);
        match open_bytes(&bytes) {
            Err(GgufError::Truncated { what, .. }) => assert!(what.contains("q6_k.weight"), "{what}"),
            other => panic!("offset {offset}: {other:?}"),
        }
    }
    let mut bytes = fixture_bytes();
    let old = u64::from_le_bytes(bytes[off_at..off_at + 8].try_into().unwrap());
    put_u64(&mut bytes, off_at, old + 1);
    match open_bytes(&bytes) {
        Err(GgufError::Invalid { msg, .. }) => assert!(msg.contains("alignment"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn invalid_structures() {
    let expect_invalid = |bytes: &[u8], needle: &str| match open_bytes(bytes) {
        Err(GgufError::Invalid { msg, .. }) => assert!(msg.contains(needle), "{msg} lacks {needle}"),
        other => panic!("expected Invalid with {needle}: {other:?}"),
    };
    let fresh = fixture_bytes;

    let mut b = fresh();
    let (n_dims_at, dim0_at, type_at, _) = tensor_info_fields(&b, "q8_0.weight");
    put_u32(&mut b, n_dims_at, 5);
    expect_invalid(&b, "dimensions");

    let mut b = fresh();
    put_u64(&mut b, dim0_at, 500);
    expect_invalid(&b, "block size");

    let mut b = fresh();
    put_u64(&mut b, dim0_at, 1 << 62);
    expect_invalid(&b, "overflow");

    let mut b = fresh();
    put_u32(&mut b, type_at, 99);
    match open_bytes(&b) {
        Err(GgufError::UnsupportedType { tensor, type_id: 99, .. }) => assert_eq!(tensor, "q8_0.weight"),
        other => panic!("{other:?}"),
    }

    let mut b = fresh();
    let at = after_string(&b, "test.u8");
    put_u32(&mut b, at, 13);
    expect_invalid(&b, "unknown value type 13");

    // Renaming test.i8 to test.u8 makes a duplicate key.
    let mut b = fresh();
    let at = after_string(&b, "test.i8");
    b[at - 2] = b'u';
    expect_invalid(&b, "duplicate metadata key");

    let mut b = fresh();
    let at = after_string(&b, "q4_0.weight");
    b[at - 11..at].copy_from_slice(b"q4_1.weight");
    expect_invalid(&b, "duplicate tensor name");

    let mut b = fresh();
    let at = after_string(&b, "general.alignment");
    put_u32(&mut b, at + 4, 48);
    expect_invalid(&b, "power of two");

    let mut b = fresh();
    let at = after_string(&b, "general.name");
    b[at + 4 + 8] = 0xFF; // inside the key's string value: lossy, not an error
    assert!(open_bytes(&b).unwrap().get_str("general.name").unwrap().contains('\u{FFFD}'));
}

#[test]
fn known_but_undecodable_type_opens_and_then_refuses_to_dequantize() {
    // Q4_K (144 bytes per 256) relabelled IQ2_XXS (66 bytes per 256): it still fits, so the
    // file opens, and only dequantizing that tensor fails.
    let mut b = fixture_bytes();
    let (_, _, type_at, _) = tensor_info_fields(&b, "q4_k.weight");
    put_u32(&mut b, type_at, 16);
    let f = open_bytes(&b).unwrap();
    assert_eq!(f.tensor("q4_k.weight").unwrap().ggml_type, GgmlType::IQ2_XXS);
    match f.dequantize("q4_k.weight") {
        Err(e @ GgufError::UnsupportedType { type_id: 16, .. }) => assert!(e.to_string().contains("IQ2_XXS"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(f.dequantize("q6_k.weight").is_ok());
}

#[test]
fn random_corruption_never_panics() {
    // Flip bytes in the header, metadata and tensor infos; every outcome is fine except a panic
    // (which fails the test), and whatever opens must dequantize without one too.
    let json = fixture_json();
    let data = json_u64(&json, "data_start") as usize;
    let clean = fixture_bytes();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut opened, mut failed) = (0, 0);
    for _ in 0..300 {
        let mut b = clean.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() % data as u64) as usize;
            b[at] = next() as u8;
        }
        match open_bytes(&b) {
            Ok(f) => {
                opened += 1;
                for t in f.tensors() {
                    let _ = f.dequantize(&t.name);
                }
            }
            Err(_) => failed += 1,
        }
    }
    eprintln!("random corruption: {opened} opened, {failed} rejected");
}

// ---- the real models --------------------------------------------------------------------------

fn model_samples(file: &str) -> Option<Value> {
    let text = std::fs::read_to_string(fixture_dir().join("model-samples.json")).unwrap();
    let all: Value = serde_json::from_str(&text).unwrap();
    all["models"].as_array().unwrap().iter().find(|m| m["file"] == file).cloned()
}

/// Checks counts by type, dequantizes every tensor (all finite), times it, and compares the
/// tensors gguf-py sampled.
fn check_model(file: &str, arch: &str, n_tensors: usize, counts: &[(GgmlType, usize)]) -> Option<GgufFile> {
    let path = engine::paths::test_model(file)?;
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.architecture(), Some(arch));
    assert_eq!(f.tensors().len(), n_tensors);
    for &(ty, n) in counts {
        assert_eq!(f.tensors().iter().filter(|t| t.ggml_type == ty).count(), n, "{file}: {ty}");
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
        assert!(values.iter().all(|v| v.is_finite()), "{file}: {} has non-finite values", t.name);
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
        eprintln!("{file}: not the file model-samples.json was made from; skipping the gguf-py comparison");
        return Some(f);
    }
    for s in samples["tensors"].as_array().unwrap() {
        let name = s["name"].as_str().unwrap();
        let values = f.dequantize(name).unwrap();
        assert_eq!(f.tensor(name).unwrap().ggml_type.name(), s["type"].as_str().unwrap());
        let indices = s["indices"].as_array().unwrap();
        let bits = s["bits"].as_array().unwrap();
        for (i, b) in indices.iter().zip(bits) {
            let (i, b) = (i.as_u64().unwrap() as usize, b.as_u64().unwrap() as u32);
            assert_eq!(values[i].to_bits(), b, "{name}[{i}]: {} vs gguf-py {}", values[i], f32::from_bits(b));
        }
        // Sums differ only by summation order, which is far below this bound.
        let sum: f64 = values.iter().map(|&v| f64::from(v)).sum();
        let (want, scale) = (s["sum"].as_f64().unwrap(), s["sum_abs"].as_f64().unwrap());
        assert!((sum - want).abs() <= 1e-9 * scale, "{name}: sum {sum} vs gguf-py {want}");
    }
    Some(f)
}

#[test]
fn smollm2_q4_1_model() {
    use GgmlType::*;
    let file = engine::paths::DEFAULT_MODEL_FILE;
    let Some(f) = check_model(file, "llama", 272, &[(Q4_1, 210), (F32, 61), (Q8_0, 1)]) else { return };
    assert_eq!(f.tensor("token_embd.weight").unwrap().ggml_type, Q8_0);
    assert_eq!(f.tensor("token_embd.weight").unwrap().shape(), vec![49152, 576]);
    assert_eq!(f.tensor("blk.0.ffn_down.weight").unwrap().shape(), vec![576, 1536]);
    assert!(f.tensor("output.weight").is_none(), "tied embeddings");
    assert_eq!(f.get_u64("llama.embedding_length"), Some(576));
    assert_eq!(f.get_str("tokenizer.ggml.model"), Some("gpt2"));
    assert_eq!(f.get_str_array("tokenizer.ggml.tokens").map(|t| t.len()), Some(49152));
}

#[test]
fn qwen2_5_coder_model() {
    use GgmlType::*;
    let file = engine::paths::QWEN_TEST_MODEL_FILE;
    let counts = [(Q8_0, 13), (Q5_0, 133), (F32, 121), (Q6_K, 12), (Q4_K, 12)];
    let Some(f) = check_model(file, "qwen2", 291, &counts) else { return };
    assert_eq!(f.tensor("token_embd.weight").unwrap().shape(), vec![151936, 896]);
    assert_eq!(f.get_u64("qwen2.embedding_length"), Some(896));
    assert_eq!(f.get_str_array("tokenizer.ggml.tokens").map(|t| t.len()), Some(151936));
}
