#!/usr/bin/env python3
"""Generates the tiny random-weight reference models in engine/tests/fixtures/tiny/.

Each case is a real Hugging Face `transformers` model (Llama, Qwen2 or Qwen3) of a few
hundred KB with seeded random weights, saved as a Hugging Face folder (config.json,
model.safetensors in float32, a WordLevel tokenizer.json covering every id), together with
`expected.json`: what transformers computes for a fixed 40-token input, in float32 —

  * for every position, the top-5 `[id, logprob]` pairs and the logprobs of a few fixed ids
    (log_softmax in float64 of the float32 logits, rounded to 7 significant digits);
  * a 16-token greedy continuation (argmax, ties to the lowest id) with the top-1 margin of
    each step (an input sequence is only accepted if every margin is >= 1e-3, so the
    continuation is robust to float32 summation-order noise);
  * `sensitivity`: how far the logprobs move when the feature under test is switched off
    (RoPE scaling replaced by plain RoPE, or Qwen3's q/k norm weights set to 1), which shows
    the test's tolerance is far below the size of a real defect.

The cases cover what the GGUF golden tests do not: Qwen3 (per-head q/k RMSNorm, head_dim *
heads != hidden_size), the rope_scaling variants linear, dynamic, llama3 and yarn, and the
architectures Mistral (sliding window 8 < the 40-token input), Gemma 2 (soft-caps, sandwich
norms, alternating sliding/global layers), Gemma 3 (q/k norms, local RoPE base, linear scaling
on the global layers), Phi-3 (fused projections, sliding window), Mixtral (4 experts, top 2,
renormalised) and Qwen3-MoE (4 experts, top 2, not renormalised, one dense layer).

For those, `sensitivity` also records how far the logprobs move when the feature is switched
off in transformers (`ABLATIONS`: window removed, soft-cap removed, routing changed).

`dynamic`: transformers' dynamic NTK recomputes the base from the current sequence length
(max position + 1) whenever it exceeds max_position_embeddings, so the frequencies change
during a forward pass and between decode steps. Our engine, like vLLM, uses the static form
with the longest context (original × factor):
    base = theta * ((factor * max_len / orig) - (factor - 1)) ** (dim / (dim - 2)),
    max_len = orig * factor.
For that case the expected values are computed by transformers with its rotary `inv_freq`
buffer overwritten by this static formula (and the per-length update switched off); the size
of the difference to transformers' own dynamic behaviour is recorded in expected.json.

Rerun (outside the repository's own environment; only PyPI is needed, any CPU works):

    python3 -m venv .venv
    .venv/bin/pip install torch transformers safetensors tokenizers
    .venv/bin/python scripts/make-tiny-models.py

It overwrites engine/tests/fixtures/tiny/<case>/ for every case (or only the cases named on
the command line). Versions used for the checked-in fixtures: torch 2.15.0, transformers 5.24.0,
tokenizers 0.23.3, safetensors 0.8.0 (Python 3.11); each expected.json records its own.
Reruns with the same versions are bit-identical on x86-64 CPUs up to float32 reduction order.
"""

import json
import math
import os
import shutil
import sys
from pathlib import Path

import torch
import transformers
from transformers import (
    AutoModelForCausalLM,
    Gemma2Config,
    Gemma3TextConfig,
    LlamaConfig,
    MistralConfig,
    MixtralConfig,
    Phi3Config,
    Qwen2Config,
    Qwen3Config,
    Qwen3MoeConfig,
)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "engine" / "tests" / "fixtures" / "tiny"

SEED = 1234
VOCAB = 128
PROMPT_LEN = 40
MAX_NEW = 16
FIXED_IDS = [0, 7, 42]
MIN_MARGIN = 1e-3
BOS, EOS = 1, 2

COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    rms_norm_eps=1e-6,
    bos_token_id=BOS,
    eos_token_id=EOS,
    pad_token_id=None,
)

# name -> (config class, config kwargs, description)
CASES = {
    "qwen3": (
        Qwen3Config,
        dict(head_dim=32, tie_word_embeddings=False, rope_theta=1e6, max_position_embeddings=128),
        "Qwen3: per-head RMSNorm on q and k before RoPE, head_dim 32 with hidden 64 and 4 heads "
        "(head_dim*heads != hidden), 2 kv heads, untied lm_head, no qkv bias.",
    ),
    "llama-llama3-rope": (
        LlamaConfig,
        dict(
            tie_word_embeddings=True,
            rope_theta=10000.0,
            max_position_embeddings=256,
            # original 32 so that with head_dim 16 the three bands all occur: pair 0 (wavelength
            # 6.3 < 32/4) is kept, pair 1 (19.9) is smoothed, pairs 2.. (>= 62.8 > 32) are / 8.
            rope_scaling=dict(
                rope_type="llama3",
                factor=8.0,
                low_freq_factor=1.0,
                high_freq_factor=4.0,
                original_max_position_embeddings=32,
            ),
        ),
        "Llama with llama3 rope scaling (all three frequency bands occur), tied embeddings.",
    ),
    "llama-linear-rope": (
        LlamaConfig,
        dict(
            tie_word_embeddings=True,
            rope_theta=10000.0,
            max_position_embeddings=128,
            rope_scaling=dict(rope_type="linear", factor=2.0),
        ),
        "Llama with linear rope scaling (factor 2), tied embeddings.",
    ),
    "qwen2-yarn-rope": (
        Qwen2Config,
        dict(
            tie_word_embeddings=False,
            rope_theta=10000.0,
            # max = original * factor keeps transformers' consistency check quiet. original 4096
            # with head_dim 16 and theta 1e4 puts the YaRN correction range at [2, 6]: pairs
            # 0-2 extrapolated, 3-5 blended, 6-7 interpolated (a small original length would
            # interpolate every pair but the first).
            max_position_embeddings=16384,
            rope_scaling=dict(rope_type="yarn", factor=4.0, original_max_position_embeddings=4096),
        ),
        "Qwen2 (qkv bias) with YaRN rope scaling (factor 4, attention factor 0.1 ln 4 + 1).",
    ),
    "llama-dynamic-rope": (
        LlamaConfig,
        dict(
            tie_word_embeddings=True,
            rope_theta=10000.0,
            max_position_embeddings=16,
            rope_scaling=dict(rope_type="dynamic", factor=2.0),
        ),
        "Llama with dynamic NTK rope scaling (factor 2, max_position_embeddings 16). Expected values "
        "use the STATIC form (base scaled once for original*factor positions, as vLLM and our engine "
        "do), computed by transformers with its inv_freq buffer overwritten.",
    ),
    "mistral-sliding": (
        MistralConfig,
        dict(head_dim=16, tie_word_embeddings=False, rope_theta=10000.0, max_position_embeddings=128, sliding_window=8),
        "Mistral with sliding-window attention (window 8 < the 40-token input), untied lm_head.",
    ),
    "gemma2": (
        Gemma2Config,
        dict(
            head_dim=16,
            tie_word_embeddings=True,
            rope_theta=10000.0,
            max_position_embeddings=128,
            sliding_window=8,
            query_pre_attn_scalar=24,
            attn_logit_softcapping=5.0,
            final_logit_softcapping=10.0,
            hidden_activation="gelu_pytorch_tanh",
        ),
        "Gemma 2: GELU-tanh MLP, (1+w) RMSNorm, sandwich norms, embeddings scaled by sqrt(64), "
        "attention scale 24^-0.5, attention soft-cap 5 and final soft-cap 10, layer 0 sliding "
        "(window 8) and layer 1 global, tied embeddings.",
    ),
    "gemma3": (
        Gemma3TextConfig,
        dict(
            head_dim=16,
            tie_word_embeddings=True,
            max_position_embeddings=128,
            sliding_window=8,
            query_pre_attn_scalar=16,
            layer_types=["sliding_attention", "full_attention"],
            rope_parameters={
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000000.0},
            },
        ),
        "Gemma 3 text: Gemma 2's layout with per-head (1+w) q/k norms, no soft-caps, layer 0 "
        "sliding (window 8, RoPE base 1e4) and layer 1 global (base 1e6, linear scaling 2).",
    ),
    "phi3": (
        Phi3Config,
        dict(
            tie_word_embeddings=False,
            rope_theta=10000.0,
            max_position_embeddings=128,
            original_max_position_embeddings=128,
            sliding_window=12,
        ),
        "Phi-3: fused qkv_proj and gate_up_proj, sliding window 12 on every layer.",
    ),
    "mixtral": (
        MixtralConfig,
        dict(
            head_dim=16,
            tie_word_embeddings=False,
            rope_theta=10000.0,
            max_position_embeddings=128,
            sliding_window=16,
            num_local_experts=4,
            num_experts_per_tok=2,
        ),
        "Mixtral: 4 SwiGLU experts, top-2 routing renormalised, sliding window 16.",
    ),
    "qwen3-moe": (
        Qwen3MoeConfig,
        dict(
            head_dim=32,
            tie_word_embeddings=False,
            rope_theta=1e6,
            max_position_embeddings=128,
            num_experts=4,
            num_experts_per_tok=2,
            moe_intermediate_size=48,
            norm_topk_prob=False,
            decoder_sparse_step=1,
            mlp_only_layers=[1],
        ),
        "Qwen3-MoE: Qwen3 attention, layer 0 with 4 experts (moe_intermediate_size 48) top-2 "
        "without renormalisation (norm_topk_prob false), layer 1 dense (mlp_only_layers).",
    ),
}

# case -> {name: config overrides that switch the feature under test off}
ABLATIONS = {
    "mistral-sliding": {"without_sliding_window": dict(sliding_window=None)},
    "gemma2": {
        "without_attention_softcap": dict(attn_logit_softcapping=None),
        "without_final_softcap": dict(final_logit_softcapping=None),
        "without_sliding_window": dict(sliding_window=4096),
    },
    "gemma3": {"without_sliding_window": dict(sliding_window=4096)},
    "phi3": {"without_sliding_window": dict(sliding_window=None)},
    "mixtral": {"with_top1_routing": dict(num_experts_per_tok=1)},
    "qwen3-moe": {"with_renormalised_routing": dict(norm_topk_prob=True)},
}


def sig7(x):
    return float(f"{x:.7g}")


def init_weights(model, gen):
    """Random weights large enough that attention is not uniform and logits are not flat."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                # Around 1 but far enough from it that a missing or misplaced norm shows.
                p.copy_(0.5 + torch.rand(p.shape, generator=gen))
            elif name.endswith("embed_tokens.weight"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            elif name.endswith(".bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            elif name.endswith("lm_head.weight"):
                p.copy_(torch.randn(p.shape, generator=gen) * (3.0 / math.sqrt(p.shape[1])))
            elif p.dim() in (2, 3):
                # Unit-variance outputs for unit-variance inputs; q and k a bit larger so the
                # attention scores (and hence the rotary phases) matter. (3-D: stacked experts,
                # input features last.)
                gain = 1.6 if ("q_proj" in name or "k_proj" in name or "qkv_proj" in name) else 1.0
                p.copy_(torch.randn(p.shape, generator=gen) * (gain / math.sqrt(p.shape[-1])))
            else:
                raise RuntimeError(f"unexpected parameter {name}")


def static_dynamic_inv_freq(config):
    """vLLM's static dynamic-NTK frequencies (max_len = original * factor)."""
    rp = config.rope_parameters
    theta, factor = rp["rope_theta"], rp["factor"]
    orig = config.max_position_embeddings
    dim = config.head_dim
    max_len = orig * factor
    base = theta * ((factor * max_len / orig) - (factor - 1)) ** (dim / (dim - 2))
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).to(dtype=torch.float) / dim))
    return inv, base


def set_static_rope(model, inv_freq):
    rot = model.model.rotary_emb
    rot.inv_freq.copy_(inv_freq)
    rot.original_inv_freq.copy_(inv_freq)
    rot.rope_type = "default"  # switches off transformers' per-length recomputation


@torch.no_grad()
def logprobs(model, ids):
    out = model(input_ids=torch.tensor([ids]), use_cache=False)
    logits = out.logits[0].to(torch.float32)
    return torch.log_softmax(logits.to(torch.float64), dim=-1), logits


@torch.no_grad()
def greedy(model, ids):
    """Greedy continuation, recomputing the full sequence each step (no cache to go stale)."""
    seq = list(ids)
    toks, margins = [], []
    for _ in range(MAX_NEW):
        _, logits = logprobs(model, seq)
        last = logits[-1]
        nxt = int(torch.argmax(last))  # first maximal index = lowest id on ties
        top2 = torch.topk(last, 2).values
        margins.append(float(top2[0] - top2[1]))
        toks.append(nxt)
        seq.append(nxt)
    return toks, margins


def write_tokenizer(folder):
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders

    vocab = {"[UNK]": 0, "[BOS]": 1, "[EOS]": 2}
    for i in range(3, VOCAB):
        vocab[f"t{i}"] = i
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tok.add_special_tokens(["[UNK]", "[BOS]", "[EOS]"])
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"bos_token": "[BOS]", "eos_token": "[EOS]", "unk_token": "[UNK]", "add_bos_token": False}, indent=2)
        + "\n"
    )


def dump_expected(expected):
    """JSON with one line per top-level value and per position (small, diff-friendly)."""
    lines = []
    for k, v in expected.items():
        if k == "positions":
            rows = ",\n".join("  " + json.dumps(p, separators=(",", ":")) for p in v)
            lines.append(f' "{k}": [\n{rows}\n ]')
        else:
            lines.append(f" {json.dumps(k)}: {json.dumps(v)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def make_case(name, index):
    cls, kwargs, description = CASES[name]
    config = cls(**COMMON, **kwargs)
    config._attn_implementation = "eager"
    gen = torch.Generator().manual_seed(SEED + 1000 * index)
    torch.manual_seed(SEED + 1000 * index)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="eager")
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

    # What the saved folder computes, loaded back the way a user would load it.
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    notes = []
    rope_kind = model.config.rope_parameters.get("rope_type", "default")
    if name == "gemma3":
        rope_kind = "default"  # per-layer-type parameters; the linear scaling is part of the case
    hf_dynamic = None
    if rope_kind == "dynamic":
        inv, base = static_dynamic_inv_freq(model.config)
        hf_dynamic = model  # keep transformers' own behaviour for the comparison below
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager")
        model.eval()
        set_static_rope(model, inv)
        notes.append(
            f"dynamic NTK in its static form: base = theta * ((factor * max_len / orig) - (factor - 1)) ** "
            f"(dim / (dim - 2)) with max_len = orig * factor = {model.config.max_position_embeddings * model.config.rope_parameters['factor']:g} "
            f"-> base {base:.10g}; transformers' inv_freq buffer overwritten with it"
        )

    # An input sequence whose greedy continuation has clear top-1 margins at every step.
    attempt = 0
    while True:
        g = torch.Generator().manual_seed(SEED * 7 + 31 * index + attempt)
        ids = [int(x) for x in torch.randint(3, VOCAB, (PROMPT_LEN,), generator=g)]
        cont, margins = greedy(model, ids)
        if min(margins) >= MIN_MARGIN:
            break
        attempt += 1
        if attempt > 50:
            raise RuntimeError(f"{name}: no input with greedy margins >= {MIN_MARGIN}")

    lp, _ = logprobs(model, ids)
    positions = []
    for i in range(PROMPT_LEN):
        row = lp[i]
        top = torch.topk(row, 5)
        positions.append(
            {
                "i": i,
                "top5": [[int(t), sig7(float(v))] for v, t in zip(top.values, top.indices)],
                "fixed": [[t, sig7(float(row[t]))] for t in FIXED_IDS],
            }
        )

    # How much the tested feature moves the numbers (the test tolerance must be far below).
    sensitivity = {}
    if rope_kind != "default":
        plain = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager")
        plain.eval()
        rot = plain.model.rotary_emb
        inv = rot.compute_default_rope_parameters(plain.config)[0]
        set_static_rope(plain, inv)
        rot.attention_scaling = 1.0
        lp_plain, _ = logprobs(plain, ids)
        sensitivity["max_abs_logprob_change_without_rope_scaling"] = sig7(float((lp_plain - lp).abs().max()))
    if hf_dynamic is not None:
        lp_dyn, _ = logprobs(hf_dynamic, ids)
        sensitivity["max_abs_logprob_diff_transformers_dynamic_vs_static"] = sig7(float((lp_dyn - lp).abs().max()))
        cont_dyn, _ = greedy(hf_dynamic, ids)
        sensitivity["transformers_dynamic_greedy_token_ids"] = cont_dyn
    if name.startswith("qwen3"):
        unnormed = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager")
        unnormed.eval()
        with torch.no_grad():
            for layer in unnormed.model.layers:
                layer.self_attn.q_norm.weight.fill_(1.0)
                layer.self_attn.k_norm.weight.fill_(1.0)
        lp_u, _ = logprobs(unnormed, ids)
        sensitivity["max_abs_logprob_change_with_unit_qk_norm_weights"] = sig7(float((lp_u - lp).abs().max()))

    for label, overrides in ABLATIONS.get(name, {}).items():
        off = AutoModelForCausalLM.from_pretrained(
            folder, dtype=torch.float32, attn_implementation="eager", **overrides
        )
        off.eval()
        lp_off, _ = logprobs(off, ids)
        sensitivity[f"max_abs_logprob_change_{label}"] = sig7(float((lp_off - lp).abs().max()))

    expected = {
        "case": name,
        "description": description,
        "generator": {
            "script": "scripts/make-tiny-models.py",
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "dtype": "float32",
            "attn_implementation": "eager",
            "seed": SEED,
            "input_attempt": attempt,
        },
        "notes": notes,
        "architecture": model.config.architectures[0],
        "rope_parameters": model.config.rope_parameters,
        "input_ids": ids,
        "fixed_ids": FIXED_IDS,
        "logprobs_doc": "positions[i] is the distribution of the token after input_ids[i] "
        "(log_softmax in float64 of the float32 logits, 7 significant digits)",
        "positions": positions,
        "greedy": {"max_new_tokens": MAX_NEW, "token_ids": cont, "top1_logit_margins": [sig7(m) for m in margins]},
        "sensitivity": sensitivity,
    }
    (folder / "expected.json").write_text(dump_expected(expected))
    size = sum(f.stat().st_size for f in folder.iterdir())
    print(f"{name}: {size / 1024:.0f} KiB, attempt {attempt}, min margin {min(margins):.3g}, sensitivity {sensitivity}")


def main():
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    names = sys.argv[1:] or list(CASES)
    for n in names:
        if n not in CASES:
            sys.exit(f"unknown case {n}; known: {', '.join(CASES)}")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    for index, name in enumerate(CASES):
        if name in names:
            make_case(name, index)


if __name__ == "__main__":
    main()
