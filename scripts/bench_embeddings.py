#!/usr/bin/env python3
"""Embedding throughput of `vllmd --runner pooling` next to transformers, same machine, same run.

    python scripts/bench_embeddings.py --torch-python /path/to/venv-with-torch/bin/python

vllmd (target/release/vllmd, the default model, CPU) is driven over HTTP with /v1/embeddings at
1 and 32 concurrent requests (one prompt per request); transformers (the same GGUF, float32,
`model.model(...)`, last-token pooling + L2 normalisation) embeds the same prompts one by one
and in padded batches of 32, in a subprocess of --torch-python. Prints prompts/s, tokens/s and
the ratio vllmd / transformers at each level.
"""

import argparse
import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = Path.home() / ".cache" / "vllm-rs" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"

TORCH_SIDE = r'''
import json, sys, time, os
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
path, prompts_file, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(threads)
prompts = json.load(open(prompts_file))
d, f = os.path.dirname(path), os.path.basename(path)
tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
if tok.pad_token is None:
    tok.pad_token = tok.eos_token
tok.padding_side = "left"  # the last position is then every prompt's last token
out = {}
with torch.no_grad():
    for batch in (1, 32):
        model.model(**tok(prompts[:2], return_tensors="pt", padding=True))  # warm-up
        t0 = time.perf_counter()
        tokens = 0
        for i in range(0, len(prompts), batch):
            enc = tok(prompts[i:i + batch], return_tensors="pt", padding=True)
            h = model.model(**enc).last_hidden_state[:, -1]
            torch.nn.functional.normalize(h, dim=-1)
            tokens += int(enc["attention_mask"].sum())
        dt = time.perf_counter() - t0
        out[batch] = {"prompts_per_s": len(prompts) / dt, "tokens_per_s": tokens / dt}
print(json.dumps(out))
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_prompts(n):
    words = "retrieval pipelines embed documents and queries so that nearest neighbours share meaning".split()
    return [" ".join(words[(i + j) % len(words)] for j in range(24 + i % 40)) for i in range(n)]


def embed(base, prompt):
    req = urllib.request.Request(base + "/v1/embeddings", data=json.dumps({"input": prompt}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.loads(r.read())["usage"]["prompt_tokens"]


def run_vllmd(prompts, concurrency):
    port = free_port()
    env = dict(os.environ, VLLM_LOGGING_LEVEL="WARNING")
    proc = subprocess.Popen([str(ROOT / "target" / "release" / "vllmd"), "--runner", "pooling", "--device", "cpu",
                             "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "2048"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(base + "/health", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        embed(base, prompts[0])  # warm-up
        results = {}
        for c in concurrency:
            t0 = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(c) as pool:
                tokens = sum(pool.map(lambda p: embed(base, p), prompts))
            dt = time.perf_counter() - t0
            results[c] = {"prompts_per_s": len(prompts) / dt, "tokens_per_s": tokens / dt}
        return results
    finally:
        proc.terminate()
        proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--torch-python", required=True, help="a Python with torch + transformers + gguf")
    ap.add_argument("--num-prompts", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    prompts = make_prompts(args.num_prompts)
    ours = run_vllmd(prompts, (1, 32))
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(prompts, f)
    side = subprocess.run([args.torch_python, "-c", TORCH_SIDE, str(MODEL), f.name, str(args.threads)],
                          capture_output=True, text=True, check=True)
    theirs = {int(k): v for k, v in json.loads(side.stdout.strip().splitlines()[-1]).items()}
    print(f"{args.num_prompts} prompts, {args.threads} threads, {MODEL.name}")
    print(f"{'level':>8} {'vllmd prompts/s':>16} {'tokens/s':>10} {'transformers prompts/s':>23} {'tokens/s':>10} {'ratio':>6}")
    for level in (1, 32):
        o, t = ours[level], theirs[level]
        print(f"{level:>8} {o['prompts_per_s']:>16.1f} {o['tokens_per_s']:>10.0f} {t['prompts_per_s']:>23.1f} "
              f"{t['tokens_per_s']:>10.0f} {o['prompts_per_s'] / t['prompts_per_s']:>6.2f}")


if __name__ == "__main__":
    sys.exit(main())
