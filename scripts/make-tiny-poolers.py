#!/usr/bin/env python3
"""Tiny random `*ForSequenceClassification` checkpoints (Llama, Qwen2, Qwen3) and the logits
transformers computes for them, for the classify / score / rerank tests.

    python scripts/make-tiny-poolers.py

Each folder under engine/tests/fixtures/tiny-pooling/ holds config.json, model.safetensors
(float32), a WordLevel tokenizer.json (ids `t3`..`t63` are words) and expected.json: for single
prompts and for (text_1, text_2) pairs, the input ids transformers' tokenizer produced
(`tok(text)` / `tok(text_1, text_2)`) and the model's `logits` (the `score` head on the last
token's hidden state). Needs torch, transformers, tokenizers, safetensors; tests never import them.
"""

import json
import math
import shutil
from pathlib import Path

import tokenizers
import torch
import transformers
from transformers import (
    LlamaConfig,
    LlamaForSequenceClassification,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForSequenceClassification,
    Qwen3Config,
    Qwen3ForSequenceClassification,
)

OUT = Path(__file__).resolve().parents[1] / "engine" / "tests" / "fixtures" / "tiny-pooling"
VOCAB = 64
SEED = 1616
COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
    rms_norm_eps=1e-6,
    tie_word_embeddings=False,
    bos_token_id=1,
    eos_token_id=2,
)
CASES = {
    # name: (config class, model class, extra config, labels)
    "qwen3-cls-1label": (Qwen3Config, Qwen3ForSequenceClassification, dict(head_dim=8), ["score"]),
    "qwen2-cls-3labels": (Qwen2Config, Qwen2ForSequenceClassification, {}, ["negative", "neutral", "positive"]),
    "llama-cls-2labels": (LlamaConfig, LlamaForSequenceClassification, {}, None),
}
PROMPTS = ["t5 t9 t12 t40", "t7", "t33 t34 t35 t36 t37 t38 t39 t50 t51 t3"]
PAIRS = [("t5 t9", "t12 t40 t41"), ("t5 t9", "t60 t61"), ("t7 t8 t9", "t7 t8 t9")]


def sig7(x):
    return float(f"{x:.7g}")


def write_tokenizer(folder):
    vocab = {"[UNK]": 0, "[BOS]": 1, "[EOS]": 2}
    for i in range(3, VOCAB):
        vocab[f"t{i}"] = i
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    tok.decoder = tokenizers.decoders.WordPiece(prefix="##")
    tok.add_special_tokens(["[UNK]", "[BOS]", "[EOS]"])
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"bos_token": "[BOS]", "eos_token": "[EOS]", "unk_token": "[UNK]", "add_bos_token": False}, indent=2)
        + "\n"
    )


def init_weights(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(0.5 + torch.rand(p.shape, generator=gen))
            elif name.endswith("embed_tokens.weight"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            elif name.endswith(".bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            elif p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=gen) * (1.0 / math.sqrt(p.shape[1])))
            else:
                raise RuntimeError(f"unexpected parameter {name}")


@torch.no_grad()
def logits(model, ids):
    return [sig7(v) for v in model(input_ids=torch.tensor([ids])).logits[0].tolist()]


def make_case(name, index):
    cfg_cls, model_cls, extra, labels = CASES[name]
    kwargs = dict(COMMON, **extra)
    if labels is not None:
        kwargs["id2label"] = {i: l for i, l in enumerate(labels)}
        kwargs["label2id"] = {l: i for i, l in enumerate(labels)}
        kwargs["num_labels"] = len(labels)
    else:
        kwargs["num_labels"] = 2
    config = cfg_cls(**kwargs)
    torch.manual_seed(SEED + index)
    gen = torch.Generator().manual_seed(SEED + index)
    model = model_cls(config).to(torch.float32)
    init_weights(model, gen)
    model.eval()
    folder = OUT / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    model.save_pretrained(folder, safe_serialization=True)
    for f in folder.iterdir():
        if f.name not in ("config.json", "model.safetensors"):
            f.unlink()
    write_tokenizer(folder)
    tok = PreTrainedTokenizerFast.from_pretrained(folder)
    back = model_cls.from_pretrained(folder, dtype=torch.float32)
    back.eval()
    singles = []
    for p in PROMPTS:
        ids = tok(p)["input_ids"]
        singles.append({"text": p, "input_ids": ids, "logits": logits(back, ids)})
    pairs = []
    for a, b in PAIRS:
        ids = tok(a, b)["input_ids"]
        pairs.append({"text_1": a, "text_2": b, "input_ids": ids, "logits": logits(back, ids)})
    expected = {
        "generator": {
            "script": "scripts/make-tiny-poolers.py",
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        },
        "architecture": model_cls.__name__,
        "num_labels": config.num_labels,
        "id2label": {str(k): v for k, v in config.id2label.items()},
        "singles": singles,
        "pairs": pairs,
    }
    (folder / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    print("wrote", folder)


def main():
    for i, name in enumerate(CASES):
        make_case(name, i)


if __name__ == "__main__":
    main()
