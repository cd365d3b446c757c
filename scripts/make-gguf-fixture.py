#!/usr/bin/env python3
"""Write the small GGUF fixture the Rust GGUF reader is tested against.

The reference is gguf-py, the `gguf` package published from llama.cpp: its GGUFWriter writes the
file, its quantizers produce the Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/BF16 data, and its dequantizers
(`gguf.quants.dequantize`, applied to the bytes read back with its GGUFReader) produce the
expected float32 values. Types gguf-py can only dequantize (the K-quants) get random block bytes
with their f16 scale fields set to finite values.

Outputs, in engine/tests/fixtures/gguf/:
  tiny.gguf.bin       the GGUF file (named .bin because the repository ignores *.gguf)
  tiny.expected.bin   the expected values: every tensor's float32 (little-endian), concatenated
  tiny.json           what the file holds: metadata (typed), tensor infos, byte offsets of the
                      file's sections, and where each tensor's values sit in tiny.expected.bin

  model-samples.json  gguf-py's values for a few tensors of each real test model (sampled
                      elements as f32 bits, plus the sum and sum of |x|), only with --models

Run again (the output is deterministic for a given gguf version) with:
  python3 -m venv .venv && .venv/bin/pip install gguf numpy   # .venv is git-ignored
  .venv/bin/python scripts/make-gguf-fixture.py
  .venv/bin/python scripts/make-gguf-fixture.py --models   # also model-samples.json,
      # from the models scripts/fetch-models.sh puts in ${VLLM_CACHE_ROOT:-~/.cache/vllm-rs}/models
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFValueType as V

OUT = Path(__file__).resolve().parent.parent / "engine" / "tests" / "fixtures" / "gguf"
ALIGNMENT = 64  # not the default 32, so the reader's alignment handling is exercised

# (key, value, value type, array element type). Arrays of arrays give their inner types by
# nesting (value, type, subtype) tuples in the expectations below.
METADATA = [
    ("general.name", "tiny fixture \u2713", V.STRING, None),
    ("general.empty", "", V.STRING, None),
    ("test.u8", 200, V.UINT8, None),
    ("test.i8", -100, V.INT8, None),
    ("test.u16", 60000, V.UINT16, None),
    ("test.i16", -30000, V.INT16, None),
    ("test.u32", 4_000_000_000, V.UINT32, None),
    ("test.i32", -2_000_000_000, V.INT32, None),
    ("test.u64", 2**40 + 3, V.UINT64, None),
    ("test.i64", -(2**40), V.INT64, None),
    ("test.f32", 0.1, V.FLOAT32, None),
    ("test.f64", 3.141592653589793, V.FLOAT64, None),
    ("test.true", True, V.BOOL, None),
    ("test.false", False, V.BOOL, None),
    ("test.str_array", ["alpha", "\u03b2eta", "", "<0x0A>", "\u0120the"], V.ARRAY, V.STRING),
    ("test.i32_array", [1, -2, 3, 2**31 - 1], V.ARRAY, V.INT32),
    ("test.u64_array", [0, 2**63 + 5], V.ARRAY, V.UINT64),
    ("test.f32_array", [0.5, -1.25, 1e-3], V.ARRAY, V.FLOAT32),
    ("test.bool_array", [True, False, True], V.ARRAY, V.BOOL),
    ("test.nested", [[1, 2], [3]], V.ARRAY, V.ARRAY),
    ("llama.context_length", 2048, V.UINT32, None),
    ("llama.rope.freq_base", 10000.0, V.FLOAT32, None),
]

VALUE_TYPE_NAMES = {
    V.UINT8: "U8", V.INT8: "I8", V.UINT16: "U16", V.INT16: "I16", V.UINT32: "U32",
    V.INT32: "I32", V.UINT64: "U64", V.INT64: "I64", V.FLOAT32: "F32", V.FLOAT64: "F64",
    V.BOOL: "Bool", V.STRING: "String", V.ARRAY: "Array",
}

# Byte offsets of the f16 scale fields in one block of each K-quant (ggml's block_q*_K).
K_QUANT_F16_FIELDS = {
    T.Q2_K: [80, 82],
    T.Q3_K: [108],
    T.Q4_K: [0, 2],
    T.Q5_K: [0, 2],
    T.Q6_K: [208],
}


def typed(value, vtype, sub_type):
    """Expected value as the test reads it: {"type": name, "value": ...}, arrays recursively."""
    if vtype == V.ARRAY:
        if sub_type == V.ARRAY:
            # gguf-py types inner arrays from their first element (Python int -> INT32).
            items = [typed(v, V.ARRAY, V.INT32) for v in value]
        else:
            items = [typed(v, sub_type, None) for v in value]
        return {"type": "Array", "value": items}
    if vtype == V.FLOAT32:
        value = float(np.float32(value))  # what the file can hold
    return {"type": VALUE_TYPE_NAMES[vtype], "value": value}


def tensors(rng: np.random.Generator):
    """(name, ggml type, row-major shape, data to write, raw ggml type or None)."""
    out = []

    def normal(shape):
        return rng.standard_normal(shape).astype(np.float32) * np.float32(0.05)

    out.append(("norm.weight", T.F32, (576,), 1.0 + normal((576,)), None))
    out.append(("f32.weight", T.F32, (3, 256), normal((3, 256)), None))
    out.append(("f16.weight", T.F16, (4, 256), normal((4, 256)).astype(np.float16), None))
    for name, qtype, shape in [
        ("bf16.weight", T.BF16, (4, 256)),
        ("q8_0.weight", T.Q8_0, (4, 512)),
        ("q4_0.weight", T.Q4_0, (2, 3, 256)),
        ("q4_1.weight", T.Q4_1, (4, 512)),
        ("q5_0.weight", T.Q5_0, (4, 512)),
        ("q5_1.weight", T.Q5_1, (4, 256)),
    ]:
        data = normal(shape)
        data[0, ..., :32] = 0.0  # an all-zero block: the quantizers' d == 0 path
        out.append((name, qtype, shape, gguf.quants.quantize(data, qtype), qtype))
    for name, qtype, shape in [
        ("q2_k.weight", T.Q2_K, (3, 512)),
        ("q3_k.weight", T.Q3_K, (3, 512)),
        ("q4_k.weight", T.Q4_K, (4, 512)),
        ("q5_k.weight", T.Q5_K, (3, 512)),
        ("q6_k.weight", T.Q6_K, (4, 512)),
    ]:
        block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
        n_blocks = int(np.prod(shape)) // block_size
        raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
        for at in K_QUANT_F16_FIELDS[qtype]:
            scales = (rng.uniform(0.002, 0.05, n_blocks) * rng.choice([-1, 1], n_blocks)).astype(np.float16)
            raw[:, at:at + 2] = scales.view(np.uint8).reshape(n_blocks, 2)
        raw = raw.reshape(*shape[:-1], shape[-1] // block_size * type_size)
        out.append((name, qtype, shape, raw, qtype))
    return out


MODEL_FILES = ["SmolLM2-135M-Instruct.Q4_1.gguf", "qwen2.5-coder-0.5b-instruct.gguf"]


def model_samples() -> None:
    """Reference values for the real models: per model, the first two tensors of each type."""
    root = Path(os.environ.get("VLLM_CACHE_ROOT") or Path.home() / ".cache" / "vllm-rs") / "models"
    models = []
    for file in MODEL_FILES:
        path = root / file
        reader = gguf.GGUFReader(str(path))
        picked, per_type = [], {}
        for t in reader.tensors:
            if per_type.get(t.tensor_type, 0) < 2:
                per_type[t.tensor_type] = per_type.get(t.tensor_type, 0) + 1
                picked.append(t)
        rows = []
        for t in picked:
            raw = np.asarray(reader.data[t.data_offset:t.data_offset + t.n_bytes])
            values = gguf.quants.dequantize(raw, t.tensor_type).astype(np.float32).reshape(-1)
            n = values.size
            idx = sorted({0, 1, 17, 255, n // 3, n // 2 + 5, n - 1,
                          *np.random.default_rng(n).integers(0, n, 16).tolist()} - {n})
            rows.append({
                "name": t.name,
                "type": t.tensor_type.name,
                "indices": [int(i) for i in idx],
                "bits": [int(b) for b in values[idx].view(np.uint32)],
                "sum": float(values.astype(np.float64).sum()),
                "sum_abs": float(np.abs(values.astype(np.float64)).sum()),
            })
        models.append({"file": file, "file_size": path.stat().st_size, "tensors": rows})
        print(f"{file}: sampled {len(rows)} tensors")
    (OUT / "model-samples.json").write_text(json.dumps({"models": models}, indent=1) + "\n")


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    if "--models" in sys.argv[1:]:
        model_samples()
    gguf_path = OUT / "tiny.gguf.bin"
    rng = np.random.default_rng(20240601)

    writer = gguf.GGUFWriter(str(gguf_path), "llama")
    writer.add_custom_alignment(ALIGNMENT)
    for key, value, vtype, sub_type in METADATA:
        writer.add_key_value(key, value, vtype, sub_type=sub_type)
    specs = tensors(rng)
    for name, _qtype, _shape, data, raw in specs:
        writer.add_tensor(name, data, raw_dtype=raw)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    # Read the file back with gguf-py's own reader: expectations describe what is in the file.
    reader = gguf.GGUFReader(str(gguf_path))
    metadata = [{"key": "general.architecture", **typed("llama", V.STRING, None)},
                {"key": "general.alignment", **typed(ALIGNMENT, V.UINT32, None)}]
    metadata += [{"key": k, **typed(v, t, s)} for k, v, t, s in METADATA]
    header_fields = {"GGUF.version", "GGUF.tensor_count", "GGUF.kv_count"}
    assert sorted(m["key"] for m in metadata) == sorted(set(reader.fields) - header_fields), reader.fields.keys()

    expected = bytearray()
    tensor_rows = []
    by_name = {t.name: t for t in reader.tensors}
    for name, qtype, shape, _data, _raw in specs:
        t = by_name[name]
        assert t.tensor_type == qtype, (name, t.tensor_type)
        raw_bytes = np.frombuffer(gguf_path.read_bytes(), dtype=np.uint8,
                                  count=t.n_bytes, offset=t.data_offset)
        values = gguf.quants.dequantize(raw_bytes, qtype).astype(np.float32).reshape(-1)
        assert values.size == int(np.prod(shape)) and np.isfinite(values).all(), name
        tensor_rows.append({
            "name": name,
            "type": qtype.name,
            "type_id": int(qtype),
            "dims": [int(d) for d in t.shape],  # ggml order, as stored
            "shape": list(shape),               # row-major
            "data_offset": int(t.data_offset),  # absolute, per gguf-py's reader
            "n_bytes": int(t.n_bytes),
            "expected_offset": len(expected),   # byte offset into tiny.expected.bin
            "n_elements": int(values.size),
        })
        expected += values.astype("<f4").tobytes()

    first_info = min(t.field.offset for t in reader.tensors)
    info = {
        "generator": f"gguf-py {importlib.metadata.version('gguf')} via scripts/make-gguf-fixture.py",
        "version": int(reader.fields["GGUF.version"].parts[0][0]),
        "alignment": ALIGNMENT,
        "file_size": gguf_path.stat().st_size,
        # Section boundaries, for cutting the file at known places.
        "metadata_start": 24,
        "tensor_infos_start": int(first_info),
        "data_start": int(reader.data_offset),
        "metadata": metadata,
        "tensors": tensor_rows,
    }
    (OUT / "tiny.expected.bin").write_bytes(bytes(expected))
    (OUT / "tiny.json").write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {gguf_path.name} ({info['file_size']} bytes), {len(tensor_rows)} tensors; "
          f"fixture folder {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
