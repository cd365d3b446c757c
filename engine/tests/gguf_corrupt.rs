//! Corrupt copies of the gguf-py fixture (see `scripts/make-gguf-fixture.py`): every kind of
//! damage must give the matching `GgufError`, naming the file, and nothing may panic.

use std::path::{Path, PathBuf};

use engine::gguf::{GgmlType, GgufError, GgufFile};
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
    let at = bytes
        .windows(pat.len())
        .position(|w| w == pat.as_slice())
        .unwrap_or_else(|| panic!("{s} not found"));
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
    let data_end = json["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| json_u64(t, "data_offset") + json_u64(t, "n_bytes"))
        .max();
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
    assert!(
        open_bytes(&bytes[..data_end]).is_ok(),
        "trailing padding is optional"
    );
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
                Err(GgufError::Truncated { what: w, .. }) => {
                    assert!(w.contains(&count.to_string()), "{what}: {w}")
                }
                other => panic!("{what} {count}: {other:?}"),
            }
        }
    }
    // The first metadata key's length.
    let mut bytes = fixture_bytes();
    put_u64(&mut bytes, 24, 1 << 62);
    assert!(matches!(
        open_bytes(&bytes),
        Err(GgufError::Truncated { offset: 32, .. })
    ));
    // A string value's length.
    let mut bytes = fixture_bytes();
    let at = after_string(&bytes, "general.name") + 4;
    put_u64(&mut bytes, at, u64::MAX);
    assert!(matches!(
        open_bytes(&bytes),
        Err(GgufError::Truncated { .. })
    ));
    // An array's element count.
    let mut bytes = fixture_bytes();
    let at = after_string(&bytes, "test.str_array") + 4 + 4;
    put_u64(&mut bytes, at, 1 << 61);
    match open_bytes(&bytes) {
        Err(GgufError::Truncated { what, .. }) => {
            assert!(what.contains("test.str_array"), "{what}")
        }
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
            Err(GgufError::Truncated { what, .. }) => {
                assert!(what.contains("q6_k.weight"), "{what}")
            }
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
        Err(GgufError::Invalid { msg, .. }) => {
            assert!(msg.contains(needle), "{msg} lacks {needle}")
        }
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
        Err(GgufError::UnsupportedType {
            tensor,
            type_id: 99,
            ..
        }) => assert_eq!(tensor, "q8_0.weight"),
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
    assert!(open_bytes(&b)
        .unwrap()
        .get_str("general.name")
        .unwrap()
        .contains('\u{FFFD}'));
}

#[test]
fn known_but_undecodable_type_opens_and_then_refuses_to_dequantize() {
    // Q4_K (144 bytes per 256) relabelled IQ2_XXS (66 bytes per 256): it still fits, so the
    // file opens, and only dequantizing that tensor fails.
    let mut b = fixture_bytes();
    let (_, _, type_at, _) = tensor_info_fields(&b, "q4_k.weight");
    put_u32(&mut b, type_at, 16);
    let f = open_bytes(&b).unwrap();
    assert_eq!(
        f.tensor("q4_k.weight").unwrap().ggml_type,
        GgmlType::IQ2_XXS
    );
    match f.dequantize("q4_k.weight") {
        Err(e @ GgufError::UnsupportedType { type_id: 16, .. }) => {
            assert!(e.to_string().contains("IQ2_XXS"), "{e}")
        }
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
