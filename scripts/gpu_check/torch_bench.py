"""The PyTorch side of step 5 of scripts/gpu-check.sh, and the bandwidth for the floor.

With a Llama-3.1-8B-shaped model of random bf16 weights (transformers, on the GPU):
  * throughput: 1000 prompts of 128 random tokens, 128 new tokens each (no early stop), run
    through `generate` in batches (all prompts have the same length, so there is no padding);
  * batch-1 latency: one prompt of 128 tokens, 128 new tokens, averaged over a few runs;
  * device memory copy bandwidth (read + write bytes per second of a large copy), for the
    floor of batch-1 decoding: weight bytes / bandwidth per output token.

usage: torch_bench.py MODEL_DIR RESULT_JSON [NUM_PROMPTS] [BATCH]
"""

import json
import sys
import time
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM

IN_LEN, OUT_LEN = 128, 128


def copy_bandwidth():
    n = 1 << 30  # 2 GiB of bf16
    a = torch.empty(n, dtype=torch.bfloat16, device="cuda")
    b = torch.empty_like(a)
    b.copy_(a)
    torch.cuda.synchronize()
    iters = 10
    t0 = time.perf_counter()
    for _ in range(iters):
        b.copy_(a)
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    del a, b
    torch.cuda.empty_cache()
    return 2 * 2 * n * iters / dt


def build(folder):
    cfg = AutoConfig.from_pretrained(folder)
    with torch.device("cuda"):
        try:
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
        except TypeError:
            model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16)
    return model.eval(), cfg


def generate(model, ids):
    with torch.no_grad():
        return model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=OUT_LEN, min_new_tokens=OUT_LEN, do_sample=False, pad_token_id=0)


def main(folder, result_path, num_prompts=1000, batch=250):
    bw = copy_bandwidth()
    t0 = time.perf_counter()
    model, cfg = build(folder)
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    build_s = time.perf_counter() - t0
    g = torch.Generator().manual_seed(0)
    prompts = torch.randint(3, cfg.vocab_size, (num_prompts, IN_LEN), generator=g)

    one = prompts[:1].cuda()
    generate(model, one)  # warm-up (cuBLAS heuristics, allocator)
    torch.cuda.synchronize()
    runs = 3
    t0 = time.perf_counter()
    for _ in range(runs):
        generate(model, one)
    torch.cuda.synchronize()
    latency = (time.perf_counter() - t0) / runs

    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(0, num_prompts, batch):
        generate(model, prompts[i:i + batch].cuda())
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    result = {
        "copy_bandwidth_bytes_per_s": bw,
        "weight_bytes": weight_bytes,
        "build_s": build_s,
        "batch1_latency_s": latency,
        "batch1_s_per_output_token": latency / OUT_LEN,
        "throughput_elapsed_s": elapsed,
        "num_prompts": num_prompts,
        "batch": batch,
        "output_tokens_per_s": num_prompts * OUT_LEN / elapsed,
        "total_tokens_per_s": num_prompts * (IN_LEN + OUT_LEN) / elapsed,
        "torch": torch.__version__,
    }
    Path(result_path).write_text(json.dumps(result, indent=2))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0], args[1], *(int(a) for a in args[2:]))
