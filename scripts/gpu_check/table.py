"""Step 6 of scripts/gpu-check.sh: one table from the JSON results in a folder.

usage: table.py RESULTS_DIR
"""

import json
import sys
from pathlib import Path


def read(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def fmt(v, spec):
    return format(v, spec) if isinstance(v, (int, float)) else "n/a"


def main(d):
    d = Path(d)
    rows = []
    print("\n== parity and batching (GPU, bf16 vs transformers float32)")
    print(f"{'model':12} {'ours max|dlogprob|':>19} {'torch-bf16 max':>15} {'threshold':>10} {'parity':>7} {'decode>1k':>10} {'64-vs-1 greedy':>24}")
    for m in ("llama", "qwen2", "qwen3", "llama-hd64", "llama-hd256"):
        r = read(d / f"{m}.json")
        if r is None:
            print(f"{m:12} {'(no result: see ' + m + '.json.vllmd.log)':>60}")
            rows.append(False)
            continue
        ok = bool(r.get("parity_ok")) and bool(r.get("decode_ok")) and bool(r.get("greedy_ok"))
        rows.append(ok)
        # Divergences at near-ties (top-2 gap under 0.05) are reported, not failed.
        ties = r.get("greedy_near_ties", 0)
        greedy = ("equal" if not ties else f"ok, {ties} near-tie") if r.get("greedy_ok") else f"{r.get('greedy_mismatches', '?')} differ"
        decode = f"{fmt(r.get('decode_max_abs_err'), '.3f')} {'ok' if r.get('decode_ok') else 'FAIL'}"
        print(f"{m:12} {fmt(r.get('ours_max_abs_err'), '.4f'):>19} {fmt(r.get('torch_bf16_max_abs_err'), '.4f'):>15} {fmt(r.get('threshold'), '.4f'):>10} {('ok' if r.get('parity_ok') else 'FAIL'):>7} {decode:>10} {greedy:>24}")

    sampler = read(d / "sampler.json")
    print("\n== GPU sampling kernel vs CPU sampler (same rows, same draws)")
    if sampler is None:
        print("(no result: see the gpu-sampler-check output above)")
        rows.append(False)
    else:
        for s in sampler["settings"]:
            print(f"{s['setting']:20} tokens equal {s['tokens_equal']:3}/{s['rows']}  outside CPU filters {s['outside_cpu_filters']}"
                  f"  max |dlogprob| {s['max_abs_logprob_err']:.2e}  {'ok' if s['ok'] else 'FAIL'}")
        rows.append(bool(sampler["ok"]))

    lat, tp, pt = read(d / "latency.json"), read(d / "throughput.json"), read(d / "torch.json")
    print("\n== Llama-3.1-8B shape, dummy bf16 weights, 1000 prompts 128 in / 128 out")
    ours_tps = tp and tp.get("tokens_per_second")
    ours_out = None
    if tp and tp.get("total_num_tokens") and tp.get("elapsed_time"):
        ours_out = tp["num_requests"] * 128 / tp["elapsed_time"]
    torch_tps = pt and pt.get("total_tokens_per_s")
    ratio = ours_tps / torch_tps if ours_tps and torch_tps else None
    print(f"{'':28} {'vllm-rs':>12} {'PyTorch':>12} {'ratio':>8}")
    print(f"{'total tokens/s':28} {fmt(ours_tps, '.0f'):>12} {fmt(torch_tps, '.0f'):>12} {fmt(ratio, '.2f'):>8}")
    print(f"{'output tokens/s':28} {fmt(ours_out, '.0f'):>12} {fmt(pt and pt.get('output_tokens_per_s'), '.0f'):>12}")
    ours_tpot = lat["avg_latency"] / 128 if lat and lat.get("avg_latency") else None
    torch_tpot = pt and pt.get("batch1_s_per_output_token")
    floor = pt["weight_bytes"] / pt["copy_bandwidth_bytes_per_s"] if pt else None
    print(f"{'batch-1 ms / output token':28} {fmt(ours_tpot and ours_tpot * 1e3, '.2f'):>12} {fmt(torch_tpot and torch_tpot * 1e3, '.2f'):>12}")
    if floor:
        print(f"floor: {pt['weight_bytes'] / 1e9:.2f} GB of weights / {pt['copy_bandwidth_bytes_per_s'] / 1e12:.2f} TB/s copy bandwidth = {floor * 1e3:.2f} ms per token"
              + (f"; ours is {ours_tpot / floor:.2f}x the floor" if ours_tpot else ""))
    print("(batch-1 figures are end-to-end latency of 128 in / 128 out divided by 128: they include one 128-token prefill)")
    return 0 if rows and all(rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
