#!/usr/bin/env python3
"""Prints the side-by-side table of scripts/bench-vs-llamacpp.sh from the saved results.

Reads RESULT_DIR/{vllmd,llamacpp}-c{1,16}.json (written by `vllm bench serve --save-result`, vLLM's
key names), the weight sizes and the measured memory bandwidth (RESULT_DIR/env.json), and prints
a Markdown table: ours, llama.cpp, ratio (ours / llama.cpp; > 1 means we are ahead for
throughputs, behind for latencies), and the decode floor per server: weight bytes read per token
over measured bandwidth.
"""
import json
import sys
from pathlib import Path

ROWS = [
    # (label, key, unit, higher_is_better)
    ("output throughput", "output_throughput", "tok/s", True),
    ("total token throughput", "total_token_throughput", "tok/s", True),
    ("request throughput", "request_throughput", "req/s", True),
    ("mean TTFT", "mean_ttft_ms", "ms", False),
    ("median TTFT", "median_ttft_ms", "ms", False),
    ("mean TPOT", "mean_tpot_ms", "ms", False),
    ("median TPOT", "median_tpot_ms", "ms", False),
    ("P99 ITL", "p99_itl_ms", "ms", False),
    ("mean E2EL", "mean_e2el_ms", "ms", False),
]


def load(d: Path, name: str):
    p = d / name
    if not p.exists():
        sys.exit(f"missing result file: {p}")
    return json.loads(p.read_text())


def main() -> None:
    d = Path(sys.argv[1])
    env = json.loads((d / "env.json").read_text()) if (d / "env.json").exists() else {}
    bw = env.get("bandwidth_gb_s")
    for conc in (1, 16):
        ours = load(d, f"vllmd-c{conc}.json")
        peer = load(d, f"llamacpp-c{conc}.json")
        print(f"\n### {conc} concurrent request{'s' if conc > 1 else ''}: "
              f"{ours.get('completed')} requests, {ours.get('total_input_tokens')} input / "
              f"{ours.get('total_output_tokens')} output tokens (ours)\n")
        print("| metric | vllm-rs | llama.cpp | ratio (ours/peer) |")
        print("|---|---:|---:|---:|")
        for label, key, unit, _ in ROWS:
            a, b = ours.get(key), peer.get(key)
            if a is None or b is None:
                continue
            ratio = f"{a / b:.2f}" if b else "n/a"
            print(f"| {label} ({unit}) | {a:.2f} | {b:.2f} | {ratio} |")
    if bw:
        print(f"\nMeasured memory bandwidth: {bw:.1f} GB/s ({env.get('bandwidth_how', '')})")
        for who, key in (("vllm-rs", "ours_weight_bytes"), ("llama.cpp", "peer_weight_bytes")):
            wb = env.get(key)
            if wb:
                ms = wb / (bw * 1e9) * 1e3
                print(f"- {who}: {wb / 2**20:.0f} MiB of weights read per decode step -> floor "
                      f"{ms:.1f} ms/token ({1e3 / ms:.0f} tok/s for one sequence)")


if __name__ == "__main__":
    main()
