"""Writes the models scripts/gpu-check.sh runs: three small random-weight models (Llama, Qwen2,
Qwen3: a few layers, GQA, head_dim 128), two more Llamas with head_dim 64 and 256 (the other
attention kernel instantiations), all as bfloat16 safetensors folders, and a
Llama-3.1-8B-shaped config folder for `--load-format dummy` benchmarks.

The weights are saved in bfloat16 so that transformers' float32 reference (which upcasts them
exactly) and our bf16 GPU backend compute with identical weights: the parity error then
measures only activation rounding and kernel arithmetic.

The tokenizer is the repository's tiny-model fixture tokenizer (WordLevel, `t<id>` words,
engine/tests/fixtures/tiny/qwen3) with its vocabulary extended to each model's vocab size, so
every id a model can produce decodes.
"""

import copy
import json
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config, Qwen3Config

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_TOKENIZER = ROOT / "engine" / "tests" / "fixtures" / "tiny" / "qwen3"

COMMON = dict(
    hidden_size=1024,
    intermediate_size=2816,
    num_hidden_layers=4,
    num_attention_heads=8,
    num_key_value_heads=2,
    head_dim=128,
    vocab_size=4096,
    max_position_embeddings=4096,
    rms_norm_eps=1e-5,
    bos_token_id=1,
    eos_token_id=2,
    initializer_range=0.02,
)


def from_config(cfg):
    # transformers 5 names the argument `dtype`; 4.x called it `torch_dtype`.
    try:
        return AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    except TypeError:
        return AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32)


def write_tokenizer(out: Path, vocab_size: int) -> None:
    tok = json.loads((FIXTURE_TOKENIZER / "tokenizer.json").read_text())
    base = tok["model"]["vocab"]
    vocab = dict(base)
    for i in range(len(base), vocab_size):
        vocab[f"t{i}"] = i
    tok = copy.deepcopy(tok)
    tok["model"]["vocab"] = vocab
    (out / "tokenizer.json").write_text(json.dumps(tok))
    (out / "tokenizer_config.json").write_text((FIXTURE_TOKENIZER / "tokenizer_config.json").read_text())


def spread_logits(model, vocab: int, target_std: float = 2.5) -> None:
    """Random init gives almost uniform next-token distributions, where any logprob error looks
    small. Scale the lm_head so logits have a std of `target_std` (peaked, like a trained model)."""
    ids = torch.randint(3, vocab, (1, 64))
    with torch.no_grad():
        std = model(ids).logits.float().std().item()
        head = model.get_output_embeddings().weight
        head.mul_(target_std / max(std, 1e-6))


def save(model, out: Path, vocab: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
    write_tokenizer(out, vocab)


def main(dest: str) -> None:
    dest = Path(dest)
    torch.manual_seed(0)
    cases = {
        "llama": LlamaConfig(
            **COMMON,
            rope_theta=500000.0,
            tie_word_embeddings=False,
            rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 1024},
        ),
        "qwen2": Qwen2Config(**{**COMMON, "head_dim": 128}, rope_theta=1000000.0, tie_word_embeddings=True, use_sliding_window=False),
        # Qwen3: q/k RMSNorm per head, and heads × head_dim (2048) != hidden_size.
        "qwen3": Qwen3Config(**{**COMMON, "num_attention_heads": 16, "num_key_value_heads": 4}, rope_theta=1000000.0, tie_word_embeddings=False, use_sliding_window=False),
        # attention.cu is instantiated for head dims 64, 128 and 256: exercise the other two.
        "llama-hd64": LlamaConfig(**{**COMMON, "head_dim": 64, "num_attention_heads": 16, "num_key_value_heads": 4},
                                  rope_theta=10000.0, tie_word_embeddings=True),
        "llama-hd256": LlamaConfig(**{**COMMON, "head_dim": 256, "num_attention_heads": 4, "num_key_value_heads": 1},
                                   rope_theta=10000.0, tie_word_embeddings=False),
    }
    for name, cfg in cases.items():
        model = from_config(cfg)
        if name == "qwen2":
            # Qwen2's q/k/v biases are zero at init; give them values so the bias path is tested.
            for layer in model.model.layers:
                for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                    torch.nn.init.normal_(proj.bias, std=0.5)
        if name == "qwen3":
            for layer in model.model.layers:
                torch.nn.init.normal_(layer.self_attn.q_norm.weight, mean=1.0, std=0.2)
                torch.nn.init.normal_(layer.self_attn.k_norm.weight, mean=1.0, std=0.2)
        spread_logits(model, cfg.vocab_size)
        save(model, dest / name, cfg.vocab_size)
        print(f"wrote {dest / name}", flush=True)

    # Llama-3.1-8B's config.json (shape only; `--load-format dummy` makes the weights).
    big = dest / "llama-3.1-8b"
    big.mkdir(parents=True, exist_ok=True)
    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "vocab_size": 128256,
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "torch_dtype": "bfloat16",
    }
    (big / "config.json").write_text(json.dumps(cfg, indent=2))
    write_tokenizer(big, cfg["vocab_size"])
    print(f"wrote {big}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
