"""Steps 3 and 4 of scripts/gpu-check.sh for one model folder:

3. prompt logprobs of our server (`prompt_logprobs` on /v1/completions, bf16 on the GPU)
   against transformers in float32 on the GPU, and transformers in bfloat16 against the same
   float32 reference (the peer's own error at our precision); then the same comparison for the
   tokens of a greedy decode that runs past 1,024 tokens of context (the split-K decode
   kernel: a lone sequence with a long context is split over many blocks);
4. greedy outputs of 64 concurrent requests against the same 64 requests sent one at a time.
   bf16 GEMMs are not batch-invariant (cuBLAS picks other kernels for other batch sizes), so a
   divergence counts as a failure only where the single run's top-2 logprob gap at the first
   differing token is at least NEAR_TIE; closer calls are reported, not failed.

usage: serve_checks.py MODEL_DIR VLLMD_BINARY PORT RESULT_JSON
"""

import json
import math
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

PROMPT_LENS = [37, 300, 700]  # one tile, many tiles, and chunked (> --max-num-batched-tokens)
TOP = 5
# Pass when our error is at most this multiple of PyTorch's own bf16 error (plus a floor for
# models where PyTorch bf16 happens to be near-exact): a bf16 engine cannot be held to float32,
# but it must not be worse than the reference framework running at the same precision by more
# than accumulation-order noise.
RATIO_LIMIT = 2.0
FLOOR = 0.02
# Step 4: a divergence at a token whose two best candidates are closer than this (in logprob)
# is bf16 rounding choosing between near-equals, not a batching bug.
NEAR_TIE = 0.05
# Step 3b: a prompt and a greedy continuation that together pass 1,024 tokens of context.
LONG_PROMPT, LONG_DECODE = 1000, 64


def load(folder, dtype):
    try:
        return AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).cuda().eval()
    except TypeError:
        return AutoModelForCausalLM.from_pretrained(folder, torch_dtype=dtype).cuda().eval()


def reference(folder, prompts):
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        model = load(folder, dtype)
        rows = []
        with torch.no_grad():
            for ids in prompts:
                logits = model(torch.tensor([ids], device="cuda")).logits[0].double()
                rows.append(torch.log_softmax(logits, dim=-1).cpu())
        out[name] = rows
        del model
        torch.cuda.empty_cache()
    return out


def teacher_forced(folder, ids):
    """log-softmax rows of transformers fp32 and bf16 over `ids` (row i predicts token i+1)."""
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        model = load(folder, dtype)
        with torch.no_grad():
            logits = model(torch.tensor([ids], device="cuda")).logits[0].double()
        out[name] = torch.log_softmax(logits, dim=-1).cpu()
        del model
        torch.cuda.empty_cache()
    return out


def token_ids(choice):
    """The generated ids of a completion asked with return_tokens_as_token_ids."""
    return [int(t.removeprefix("token_id:")) for t in choice["logprobs"]["tokens"]]


def divergence(batched, single):
    """None when both runs gave the same tokens; else (index, top-2 gap of the single run there)."""
    a, b = token_ids(batched), token_ids(single)
    if a == b:
        return None
    j = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    top = single["logprobs"]["top_logprobs"]
    if j >= len(top) or top[j] is None or len(top[j]) < 2:
        return (j, float("inf"))
    best = sorted(top[j].values(), reverse=True)
    return (j, best[0] - best[1])


def post(port, body, timeout=300):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def wait_ready(port, proc, limit=180):
    t0 = time.time()
    while time.time() - t0 < limit:
        if proc.poll() is not None:
            raise SystemExit(f"vllmd exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return time.time() - t0
        except OSError:
            time.sleep(0.5)
    raise SystemExit("vllmd did not become ready")


def max_err(ours_entries, ref_rows, ids):
    """Largest |ours - reference| over every prompt position and every returned token."""
    worst = 0.0
    for pos in range(1, len(ids)):
        entry = ours_entries[pos]
        for tok, v in entry.items():
            ref = float(ref_rows[pos - 1][int(tok)])
            ours = v["logprob"]
            if not math.isfinite(ours):
                return float("inf")
            worst = max(worst, abs(ours - ref))
    return worst


def main(folder, vllmd, port, result_path):
    folder = Path(folder)
    name = folder.name
    g = torch.Generator().manual_seed(7)
    vocab = json.loads((folder / "config.json").read_text())["vocab_size"]
    prompts = [torch.randint(3, vocab, (n,), generator=g).tolist() for n in PROMPT_LENS]
    refs = reference(folder, prompts)

    log = open(f"{result_path}.vllmd.log", "w")
    cmd = [vllmd, "--model", str(folder), "--device", "cuda", "--port", str(port), "--max-model-len", "2048",
           "--max-num-batched-tokens", "256", "--gpu-memory-utilization", "0.3", "--max-logprobs", "20",
           # Without prefix caching every single request recomputes its prompt, so step 4
           # compares two full computations rather than one and a cache hit.
           "--no-enable-prefix-caching"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    result = {"model": name}
    try:
        result["startup_s"] = wait_ready(port, proc)
        ours_err, torch_bf16_err = 0.0, 0.0
        for ids, r32, r16 in zip(prompts, refs["fp32"], refs["bf16"]):
            resp = post(port, {"prompt": ids, "max_tokens": 1, "temperature": 0, "prompt_logprobs": TOP})
            entries = resp["prompt_logprobs"]
            ours_err = max(ours_err, max_err(entries, r32, ids))
            # PyTorch bf16 vs fp32 on the same positions and tokens.
            for pos in range(1, len(ids)):
                for tok in entries[pos]:
                    torch_bf16_err = max(torch_bf16_err, abs(float(r16[pos - 1][int(tok)]) - float(r32[pos - 1][int(tok)])))
        limit = max(RATIO_LIMIT * torch_bf16_err, FLOOR)
        result.update(ours_max_abs_err=ours_err, torch_bf16_max_abs_err=torch_bf16_err, threshold=limit, parity_ok=ours_err <= limit)

        # 3b. A decode past 1,024 tokens of context, teacher-forced through transformers.
        g3 = torch.Generator().manual_seed(13)
        long_prompt = torch.randint(3, vocab, (LONG_PROMPT,), generator=g3).tolist()
        resp = post(port, {"prompt": long_prompt, "max_tokens": LONG_DECODE, "temperature": 0, "ignore_eos": True,
                           "logprobs": 1, "return_tokens_as_token_ids": True})
        gen = token_ids(resp["choices"][0])
        ours_lp = resp["choices"][0]["logprobs"]["token_logprobs"]
        rows = teacher_forced(folder, long_prompt + gen)
        decode_err, decode_bf16_err = 0.0, 0.0
        for s, (tok, lp) in enumerate(zip(gen, ours_lp)):
            pos = LONG_PROMPT - 1 + s  # the row that predicts generated token s
            ref = float(rows["fp32"][pos][tok])
            decode_err = max(decode_err, abs(lp - ref) if math.isfinite(lp) else float("inf"))
            decode_bf16_err = max(decode_bf16_err, abs(float(rows["bf16"][pos][tok]) - ref))
        decode_limit = max(RATIO_LIMIT * decode_bf16_err, FLOOR)
        result.update(decode_context=LONG_PROMPT + len(gen), decode_max_abs_err=decode_err,
                      decode_torch_bf16_max_abs_err=decode_bf16_err, decode_threshold=decode_limit,
                      decode_ok=len(gen) == LONG_DECODE and decode_err <= decode_limit)

        g2 = torch.Generator().manual_seed(11)
        reqs = [torch.randint(3, vocab, (int(torch.randint(16, 200, (1,), generator=g2)),), generator=g2).tolist() for _ in range(64)]
        body = lambda ids: {"prompt": ids, "max_tokens": 32, "temperature": 0, "ignore_eos": True,
                            "logprobs": 2, "return_tokens_as_token_ids": True}
        t0 = time.time()
        with ThreadPoolExecutor(64) as ex:
            batched = list(ex.map(lambda ids: post(port, body(ids))["choices"][0], reqs))
        result["concurrent_s"] = time.time() - t0
        single = [post(port, body(ids))["choices"][0] for ids in reqs]
        diverged = [(k, d) for k, d in enumerate(divergence(a, b) for a, b in zip(batched, single)) if d is not None]
        failures = [(k, j, gap) for k, (j, gap) in diverged if gap >= NEAR_TIE]
        result.update(
            greedy_divergences=[{"request": k, "token": j, "top2_gap": gap} for k, (j, gap) in diverged],
            greedy_mismatches=len(failures),
            greedy_near_ties=len(diverged) - len(failures),
            greedy_ok=not failures,
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    Path(result_path).write_text(json.dumps(result, indent=2))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
