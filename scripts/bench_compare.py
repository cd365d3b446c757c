#!/usr/bin/env python3
"""Prints the side-by-side tables of scripts/bench-vs-llamacpp.sh from its saved results.

Reads RESULT_DIR/<model>-c<C>-{vllmd,llamacpp}-<workload>.json (written by `vllm bench serve
--save-result`, vLLM's key names), the servers' resident memory (*.mem.json) and env.json
(bandwidth, kernel path), and prints Markdown tables: ours, llama.cpp, ratio (ours / llama.cpp;
> 1 means ahead for throughputs, behind for latencies and memory), and the decode floor.
"""
import json
import re
import sys
from pathlib import Path

ROWS = [
    # (label, key, unit)
    ("output throughput", "output_throughput", "tok/s"),
    ("total token throughput", "total_token_throughput", "tok/s"),
    ("mean TTFT", "mean_ttft_ms", "ms"),
    ("mean TPOT", "mean_tpot_ms", "ms"),
    ("P99 ITL", "p99_itl_ms", "ms"),
]


def main() -> None:
    d = Path(sys.argv[1])
    env = json.loads((d / "env.json").read_text()) if (d / "env.json").exists() else {}
    bw = env.get("bandwidth_gb_s")
    print(f"CPU: {env.get('cpu', '?')}; our kernel path: {env.get('isa', '?')}; threads: {env.get('threads', '?')}; "
          f"bandwidth {bw:.1f} GB/s ({env.get('bandwidth_how', '')})" if bw else "")
    runs = sorted({(m.group(1), int(m.group(2)), m.group(3)) for p in d.glob("*-vllmd-*.json")
                   if (m := re.match(r"(.+)-c(\d+)-vllmd-(\w+)\.json$", p.name))})
    for model, conc, workload in runs:
        ours_p = d / f"{model}-c{conc}-vllmd-{workload}.json"
        peer_p = d / f"{model}-c{conc}-llamacpp-{workload}.json"
        if not peer_p.exists():
            continue
        ours, peer = json.loads(ours_p.read_text()), json.loads(peer_p.read_text())
        print(f"\n### {model}, {workload}, concurrency {conc}: {ours.get('completed')} requests, "
              f"{ours.get('total_input_tokens')} input / {ours.get('total_output_tokens')} output tokens\n")
        print("| metric | vllm-rs | llama.cpp | ratio (ours/peer) |")
        print("|---|---:|---:|---:|")
        for label, key, unit in ROWS:
            a, b = ours.get(key), peer.get(key)
            if a is None or b is None:
                continue
            print(f"| {label} ({unit}) | {a:.2f} | {b:.2f} | {a / b:.2f} |" if b else f"| {label} | {a:.2f} | {b:.2f} | n/a |")
        mo, mp = d / f"{model}-c{conc}-vllmd.mem.json", d / f"{model}-c{conc}-llamacpp.mem.json"
        if mo.exists() and mp.exists():
            a, b = json.loads(mo.read_text()), json.loads(mp.read_text())
            print(f"| resident memory after the run (MiB) | {a['rss_mib']} | {b['rss_mib']} | {a['rss_mib'] / b['rss_mib']:.2f} |")
            print(f"| peak resident memory (MiB) | {a['peak_rss_mib']} | {b['peak_rss_mib']} | {a['peak_rss_mib'] / b['peak_rss_mib']:.2f} |")
    if bw:
        print("\nDecode floor (weight bytes read per token / bandwidth): both servers read the GGUF blocks as stored.")
        for gguf in sorted({r[0] for r in runs}):
            for cand in Path.home().glob(f".cache/vllm-rs/models/{gguf}.gguf"):
                size = cand.stat().st_size
                print(f"- {gguf}: {size / 2**20:.0f} MiB -> {size / (bw * 1e9) * 1e3:.1f} ms/token")


if __name__ == "__main__":
    main()
