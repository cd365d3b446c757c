#!/usr/bin/env python3
"""Client-side TTFT and output tokens/s of concurrent streaming chat requests (a small stand-in
until `vllm bench serve` lands).

    stream_chat_latency.py --url http://localhost:8000/v1 --concurrency 1 16 --max-tokens 64

Needs the `openai` package. Each client sends one chat request and streams the answer; TTFT is
the time to the first content chunk, tokens/s the completion tokens (from the usage chunk)
divided by the request's wall time, and aggregate tokens/s all tokens over the batch's wall time.
"""

import argparse
import statistics
import threading
import time

import openai

QUESTIONS = ["What is the capital of France?", "Why is the sky blue?", "Write a haiku about the sea.",
             "Name three planets.", "How do bees make honey?", "What is a prime number?",
             "Describe a cat in one sentence.", "What is the boiling point of water?"]


def one(client, model, i, max_tokens, out):
    start = time.perf_counter()
    ttft = None
    tokens = 0
    stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}],
                                            max_tokens=max_tokens, temperature=0, stream=True,
                                            stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
    for chunk in stream:
        if ttft is None and chunk.choices and chunk.choices[0].delta.content:
            ttft = time.perf_counter() - start
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
    out[i] = (ttft, tokens, time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://localhost:8000/v1")
    ap.add_argument("--api-key", default="EMPTY")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--max-tokens", type=int, default=64)
    args = ap.parse_args()
    client = openai.OpenAI(base_url=args.url, api_key=args.api_key, max_retries=0, timeout=600)
    model = client.models.list().data[0].id
    one(client, model, 0, 4, {})  # warm-up
    for c in args.concurrency:
        out = {}
        start = time.perf_counter()
        threads = [threading.Thread(target=one, args=(client, model, i, args.max_tokens, out)) for i in range(c)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        ttfts = [v[0] for v in out.values()]
        per_req = [v[1] / v[2] for v in out.values()]
        total = sum(v[1] for v in out.values())
        print(f"concurrency {c:>3}: TTFT mean {statistics.mean(ttfts) * 1000:.0f} ms (max {max(ttfts) * 1000:.0f} ms), "
              f"per-request {statistics.mean(per_req):.1f} tok/s, aggregate {total / wall:.1f} output tok/s "
              f"({total} tokens in {wall:.1f} s)")


if __name__ == "__main__":
    main()
