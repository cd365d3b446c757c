#!/usr/bin/env python3
"""Per-token cost of a structured-output constraint (issue: JSON-schema mask at batch 1 and 16).

Starts nothing: point it at a running vllmd. For each concurrency it runs the same streamed
chat requests twice, without and with a JSON-schema constraint whose language never ends before
max_tokens (an array of at least 10,000 small integers), and reports the mean time between
streamed tokens (TPOT) of each and their ratio.

    vllmd --model M --port 8000 &
    python3 scripts/bench_structured.py --base-url http://127.0.0.1:8000/v1 --concurrency 1 16
"""

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import openai

SCHEMA = {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 99}, "minItems": 10000}


def one(client, model, constrained, max_tokens, seed):
    extra = {"ignore_eos": True}
    if constrained:
        extra["guided_json"] = SCHEMA
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": f"List numbers, please ({seed})."}],
        max_tokens=max_tokens, temperature=0.8, seed=seed, stream=True,
        stream_options={"include_usage": True}, extra_body=extra)
    times, tokens = [], 0
    for chunk in stream:
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
        if chunk.choices and (chunk.choices[0].delta.content or chunk.choices[0].finish_reason):
            times.append(time.perf_counter())
    # Decode time per token after the first (the first chunk carries prefill).
    return (times[-1] - times[0]) / max(tokens - 1, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    client = openai.OpenAI(base_url=args.base_url, api_key="EMPTY", timeout=600)
    model = client.models.list().data[0].id
    print(f"model {model}, {args.max_tokens} tokens per request, {args.rounds} rounds")
    print(f"{'batch':>5} {'TPOT free (ms)':>15} {'TPOT JSON schema (ms)':>22} {'ratio':>6}")
    for c in args.concurrency:
        res = {}
        for constrained in (False, True):
            tpots = []
            for r in range(args.rounds):
                with ThreadPoolExecutor(c) as ex:
                    tpots += list(ex.map(lambda i: one(client, model, constrained, args.max_tokens, r * 1000 + i), range(c)))
            res[constrained] = statistics.mean(tpots) * 1000
        print(f"{c:>5} {res[False]:>15.2f} {res[True]:>22.2f} {res[True] / res[False]:>6.3f}")


if __name__ == "__main__":
    main()
