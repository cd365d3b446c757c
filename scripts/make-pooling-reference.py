#!/usr/bin/env python3
"""Golden embeddings for the pooling runner: Hugging Face transformers' final hidden states of
the two GGUF test models, pooled (last token / mean over tokens) and L2-normalised in float32.

    python scripts/make-pooling-reference.py --models-dir ~/.cache/vllm-rs/models

Needs torch, transformers, gguf (only to write the fixtures; tests never import them). The
GGUF is loaded the way the generation references were (AutoModel.from_pretrained(dir,
gguf_file=..., dtype=float32): weights dequantized to float32 by transformers/gguf-py), and the
hidden states are `model.model(input_ids).last_hidden_state` (after the final RMSNorm, before
the lm_head), which is what vLLM pools for a decoder served with --convert embed.
Writes engine/tests/fixtures/pooling/<name>.json.
"""

import argparse
import json
import os
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

MODELS = [
    ("smollm2-135m-q4_1", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    ("qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b-instruct.gguf"),
]
PROMPTS = [
    "The capital of France is Paris.",
    "def add(a, b):\n    return a + b",
    "Embeddings map text to vectors so that similar meanings land close together, "
    "which makes retrieval by cosine similarity possible.",
]
OUT = Path(__file__).resolve().parents[1] / "engine" / "tests" / "fixtures" / "pooling"


def sig7(x):
    return float(f"{x:.7g}")


@torch.no_grad()
def embed(model, ids, kind):
    hidden = model.model(input_ids=torch.tensor([ids])).last_hidden_state[0].to(torch.float32)
    pooled = hidden[-1] if kind == "last" else hidden.mean(dim=0)
    raw_norm = float(torch.linalg.vector_norm(pooled.to(torch.float64)))
    unit = torch.nn.functional.normalize(pooled, p=2, dim=0)
    return [sig7(v) for v in unit.tolist()], raw_norm


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models-dir", required=True)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    for name, fname in MODELS:
        d = os.path.abspath(args.models_dir)
        tok = AutoTokenizer.from_pretrained(d, gguf_file=fname)
        model = AutoModelForCausalLM.from_pretrained(d, gguf_file=fname, dtype=torch.float32)
        model.eval()
        cases = []
        for p in PROMPTS:
            ids = tok(p, add_special_tokens=True)["input_ids"]
            case = {"prompt": p, "token_ids": ids}
            for kind in ("last", "mean"):
                vec, norm = embed(model, ids, kind)
                case[kind] = {"embedding": vec, "raw_norm": sig7(norm)}
            cases.append(case)
        doc = {
            "generator": {
                "script": "scripts/make-pooling-reference.py",
                "model_file": fname,
                "reference": "transformers last_hidden_state (float32), pooled, F.normalize(p=2)",
                "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
            },
            "hidden_size": model.config.hidden_size,
            "cases": cases,
        }
        lines = [json.dumps({k: v for k, v in doc.items() if k != "cases"})[:-1] + ', "cases": [']
        lines.append(",\n".join(json.dumps(c, separators=(",", ":")) for c in cases))
        lines.append("]}")
        (OUT / f"{name}.json").write_text("\n".join(lines) + "\n")
        print("wrote", OUT / f"{name}.json")


if __name__ == "__main__":
    main()
