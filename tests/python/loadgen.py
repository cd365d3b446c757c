"""Mixed load against a running `vllmd`, shared by the CI soak (test_soak.py) and the long soak
(scripts/soak.sh): streaming and not, n > 1, long prompts that fill the KV cache, prefix-sharing
prompts, clients that hang up mid-stream, and bad requests. Every request ends in one outcome:

  ok        a complete answer (every choice has a finish_reason)
  refused   a 4xx with an OpenAI error body, for a request that was meant to be refused
  hangup    the client closed its stream on purpose after the first chunks
  timeout   the client gave up waiting (--timeout); the server aborts the request when it goes
  error     anything else: a 5xx, a malformed answer, a missing finish_reason, a dropped connection

Requests come from the official `openai` client (it checks the response shapes); the malformed
JSON body goes through its HTTP library. Traffic goes only to the given base URL (loopback).

    python tests/python/loadgen.py --base http://127.0.0.1:8000 --seconds 600 --pid PID
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import openai
from prometheus_client.parser import text_string_to_metric_families

# Common one-token English words: a prompt of N of them is roughly N + 1 tokens.
WORDS = ("the cat sat on a mat and then the dog ran to see what was there but it was only a red "
         "ball in the sun so they all went home for tea").split()
SHARED_PREFIX = "You are a helpful assistant. " + " ".join(WORDS[i % len(WORDS)] for i in range(160))

# (kind, weight). The hang-ups are a quarter of the streaming clients.
MIX = [
    ("chat", 3), ("chat_stream", 3), ("completion", 2), ("completion_stream", 2),
    ("n2", 2), ("long", 2), ("prefix", 3), ("hangup", 3), ("bad", 2),
]


@dataclass
class Record:
    kind: str
    start: float
    latency: float
    outcome: str
    detail: str = ""


@dataclass
class Monitor:
    rss: list = field(default_factory=list)  # (t, bytes)
    max_kv_usage: float = 0.0
    max_waiting: float = 0.0
    scrapes: int = 0


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def finished(choices) -> bool:
    return bool(choices) and all(c.finish_reason in ("stop", "length") for c in choices)


async def consume_stream(stream, n: int, stop_after: int | None) -> str:
    """Reads a stream; returns the outcome. `stop_after`: hang up after that many chunks."""
    finishes: dict[int, str] = {}
    chunks = 0
    async for chunk in stream:
        chunks += 1
        for c in chunk.choices:
            if c.finish_reason is not None:
                finishes[c.index] = c.finish_reason
        if stop_after is not None and chunks >= stop_after:
            await stream.close()
            return "hangup"
    return "ok" if len(finishes) == n else "error"


def error_body_ok(body) -> bool:
    return isinstance(body, dict) and isinstance(body.get("message"), str) and "type" in body


async def bad_request(client: openai.AsyncOpenAI, raw: httpx2.AsyncClient, model: str, rng: random.Random) -> tuple[str, str]:
    which = rng.randrange(5)
    try:
        if which == 0:
            r = await raw.post("/v1/chat/completions", content=b'{"model": "x", "messages": [', headers={"content-type": "application/json"})
            body = r.json()
            ok = r.status_code == 400 and error_body_ok(body.get("error"))
            return ("refused" if ok else "error", f"malformed json -> {r.status_code}")
        if which == 1:
            await client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], temperature=-1)
        elif which == 2:
            await client.completions.create(model="no-such-model", prompt="hi", max_tokens=4)
        elif which == 3:
            await client.completions.create(model=model, prompt="hi", max_tokens=10**6)
        else:
            await client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], logprobs=True, top_logprobs=1000)
        return "error", f"bad request {which} was answered 200"
    except openai.APIStatusError as e:
        ok = 400 <= e.status_code < 500 and error_body_ok(e.body)
        return ("refused" if ok else "error", f"bad request {which} -> {e.status_code}")


async def one(kind: str, client: openai.AsyncOpenAI, raw: httpx2.AsyncClient, model: str, rng: random.Random,
              long_words: tuple[int, int]) -> tuple[str, str]:
    user = lambda text: [{"role": "user", "content": text}]  # noqa: E731
    max_tokens = rng.randint(8, 40)
    if kind == "bad":
        return await bad_request(client, raw, model, rng)
    if kind == "chat":
        r = await client.chat.completions.create(model=model, messages=user(words(rng, 12)), max_tokens=max_tokens)
        return ("ok" if finished(r.choices) else "error"), ""
    if kind == "completion":
        r = await client.completions.create(model=model, prompt=words(rng, 20), max_tokens=max_tokens)
        return ("ok" if finished(r.choices) else "error"), ""
    if kind == "n2":
        r = await client.completions.create(model=model, prompt=words(rng, 10), max_tokens=max_tokens, n=2, temperature=0.9)
        return ("ok" if len(r.choices) == 2 and finished(r.choices) else "error"), ""
    if kind == "long":
        # About one token per word: sized so that two of them overfill the soak's small KV cache.
        prompt = words(rng, rng.randint(*long_words))
        r = await client.completions.create(model=model, prompt=prompt, max_tokens=16)
        return ("ok" if finished(r.choices) else "error"), ""
    if kind == "prefix":
        msgs = [{"role": "system", "content": SHARED_PREFIX}, *user(words(rng, 6))]
        r = await client.chat.completions.create(model=model, messages=msgs, max_tokens=max_tokens)
        return ("ok" if finished(r.choices) else "error"), ""
    if kind == "chat_stream":
        s = await client.chat.completions.create(model=model, messages=user(words(rng, 12)), max_tokens=max_tokens, stream=True)
        return await consume_stream(s, 1, None), ""
    if kind == "completion_stream":
        n = rng.choice([1, 2])
        s = await client.completions.create(model=model, prompt=words(rng, 15), max_tokens=max_tokens, n=n, temperature=0.8, stream=True)
        return await consume_stream(s, n, None), ""
    if kind == "hangup":
        s = await client.chat.completions.create(model=model, messages=user(words(rng, 12)), max_tokens=64, stream=True)
        return await consume_stream(s, 1, rng.randint(1, 3)), ""
    raise ValueError(kind)


async def scrape(raw: httpx2.AsyncClient) -> dict[str, float]:
    """The gauges and counters the soak watches, read with Prometheus' own parser."""
    text = (await raw.get("/metrics")).text
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc", "vllm:num_preemptions_total"):
                out[s.name] = out.get(s.name, 0.0) + s.value
    return out


def rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


async def monitor(raw: httpx2.AsyncClient, pid: int | None, t0: float, stop: asyncio.Event, mon: Monitor):
    while not stop.is_set():
        if pid is not None and (r := rss_bytes(pid)) is not None:
            mon.rss.append((time.monotonic() - t0, r))
        try:
            m = await scrape(raw)
            mon.scrapes += 1
            mon.max_kv_usage = max(mon.max_kv_usage, m.get("vllm:kv_cache_usage_perc", 0.0))
            mon.max_waiting = max(mon.max_waiting, m.get("vllm:num_requests_waiting", 0.0))
        except (httpx2.HTTPError, ValueError):
            pass
        try:
            await asyncio.wait_for(stop.wait(), timeout=1.0)
        except asyncio.TimeoutError:
            pass


def kind_cycle(seed: int) -> list[str]:
    """The mix as a shuffled cycle: each kind comes up in its proportion, all of them early."""
    cycle = [k for k, w in MIX for _ in range(w)]
    random.Random(seed).shuffle(cycle)
    return cycle


async def worker(i: int, start_at: int, deadline: float, client, raw, model: str, seed: int, records: list[Record],
                 long_words: tuple[int, int], only: str | None = None):
    """One client loop, walking the kind cycle from `start_at`; `only` pins it to one kind (the
    long-prompt clients that keep the KV cache full)."""
    rng = random.Random(seed * 1000 + i)
    cycle = kind_cycle(seed)
    step = start_at
    while time.monotonic() < deadline:
        kind = only or cycle[step % len(cycle)]
        step += 1
        start = time.monotonic()
        try:
            outcome, detail = await one(kind, client, raw, model, rng, long_words)
        except openai.APIStatusError as e:
            outcome, detail = "error", f"{e.status_code}: {str(e)[:200]}"
        except openai.APITimeoutError as e:
            outcome, detail = "timeout", str(e)[:200]
        except (openai.APIError, httpx2.HTTPError, asyncio.TimeoutError) as e:
            outcome, detail = "error", f"{type(e).__name__}: {str(e)[:200]}"
        records.append(Record(kind, start, time.monotonic() - start, outcome, detail))


def percentile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


async def settle(raw: httpx2.AsyncClient, timeout: float = 60.0) -> dict[str, float]:
    """Waits until the engine is idle (nothing running or waiting, KV usage 0); returns the last scrape."""
    deadline = time.monotonic() + timeout
    m: dict[str, float] = {}
    while time.monotonic() < deadline:
        m = await scrape(raw)
        if m.get("vllm:num_requests_running") == 0 and m.get("vllm:num_requests_waiting") == 0 and m.get("vllm:kv_cache_usage_perc") == 0:
            break
        await asyncio.sleep(0.5)
    return m


async def run(base: str, seconds: float, concurrency: int, model: str, pid: int | None = None, seed: int = 0,
              warmup: float | None = None, api_key: str = "EMPTY", long_clients: int = 2,
              long_words: tuple[int, int] = (250, 400), timeout: float = 300) -> dict:
    """`concurrency` clients on the mix, plus `long_clients` sending only long prompts."""
    t0 = time.monotonic()
    records: list[Record] = []
    mon = Monitor()
    limits = httpx2.Limits(max_connections=concurrency + long_clients + 4)
    headers = {"authorization": f"Bearer {api_key}"}
    async with httpx2.AsyncClient(base_url=base, timeout=120, headers=headers) as raw:
        client = openai.AsyncOpenAI(base_url=base + "/v1", api_key=api_key, max_retries=0, timeout=timeout,
                                    http_client=openai.DefaultAsyncHttpxClient(limits=limits))
        before = await scrape(raw)
        stop = asyncio.Event()
        mon_task = asyncio.create_task(monitor(raw, pid, t0, stop, mon))
        deadline = t0 + seconds
        n_kinds = len(kind_cycle(seed))
        mixed = [worker(i, i * n_kinds // max(1, concurrency), deadline, client, raw, model, seed, records, long_words)
                 for i in range(concurrency)]
        pressure = [worker(concurrency + i, 0, deadline, client, raw, model, seed, records, long_words, "long")
                    for i in range(long_clients)]
        await asyncio.gather(*mixed, *pressure)
        stop.set()
        await mon_task
        await client.close()
        end = await settle(raw)
        reset = await raw.post("/reset_prefix_cache")
        rss_end = rss_bytes(pid) if pid is not None else None
    return report(records, mon, before, end, reset.status_code, rss_end, seconds, t0, warmup)


def report(records, mon: Monitor, before, end, reset_status: int, rss_end, seconds: float, t0: float, warmup: float | None) -> dict:
    by_outcome: dict[str, int] = {}
    by_kind: dict[str, dict[str, int]] = {}
    for r in records:
        by_outcome[r.outcome] = by_outcome.get(r.outcome, 0) + 1
        k = by_kind.setdefault(r.kind, {})
        k[r.outcome] = k.get(r.outcome, 0) + 1
    minutes = []
    for m in range(int((seconds + 59) // 60)):
        lat = [r.latency for r in records if r.outcome == "ok" and m * 60 <= r.start - t0 < (m + 1) * 60]
        minutes.append({"minute": m + 1, "ok": len(lat), "p50_s": round(percentile(lat, 0.5), 3), "p99_s": round(percentile(lat, 0.99), 3)})
    warm = warmup if warmup is not None else min(60.0, seconds / 4)
    after_warm = [b for t, b in mon.rss if t >= warm]
    rss_warm = after_warm[0] if after_warm else None
    return {
        "requests": len(records),
        "by_outcome": by_outcome,
        "by_kind": by_kind,
        "errors": [f"{r.kind}: {r.detail}" for r in records if r.outcome in ("error", "timeout")][:20],
        "per_minute": minutes,
        "max_kv_usage": mon.max_kv_usage,
        "max_waiting": mon.max_waiting,
        "preemptions": end.get("vllm:num_preemptions_total", 0.0) - before.get("vllm:num_preemptions_total", 0.0),
        "end_running": end.get("vllm:num_requests_running"),
        "end_waiting": end.get("vllm:num_requests_waiting"),
        "end_kv_usage": end.get("vllm:kv_cache_usage_perc"),
        "reset_prefix_cache_status": reset_status,
        "warmup_s": warm,
        "rss_after_warmup_mib": rss_warm / 2**20 if rss_warm else None,
        "rss_end_mib": rss_end / 2**20 if rss_end else None,
        "rss_max_mib": max((b for _, b in mon.rss), default=0) / 2**20,
        "rss_growth_mib": (rss_end - rss_warm) / 2**20 if rss_end and rss_warm else None,
    }


def markdown(rep: dict) -> str:
    lines = [f"- requests: {rep['requests']}; outcomes: {json.dumps(rep['by_outcome'], sort_keys=True)}",
             f"- by kind: {json.dumps(rep['by_kind'], sort_keys=True)}",
             f"- peak KV usage {rep['max_kv_usage']:.1%}, peak waiting {rep['max_waiting']:.0f}, preemptions {rep['preemptions']:.0f}",
             f"- at the end: running {rep['end_running']}, waiting {rep['end_waiting']}, KV usage {rep['end_kv_usage']}, "
             f"POST /reset_prefix_cache {rep['reset_prefix_cache_status']} (200: no request holds a block)",
             f"- resident memory: {rep['rss_after_warmup_mib']:.1f} MiB after {rep['warmup_s']:.0f} s warm-up, "
             f"{rep['rss_end_mib']:.1f} MiB at the end (growth {rep['rss_growth_mib']:+.1f} MiB), peak {rep['rss_max_mib']:.1f} MiB"
             if rep["rss_growth_mib"] is not None else "- resident memory: not measured",
             "", "| minute | ok requests | p50 latency (s) | p99 latency (s) |", "|---|---|---|---|"]
    lines += [f"| {m['minute']} | {m['ok']} | {m['p50_s']} | {m['p99_s']} |" for m in rep["per_minute"]]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="server URL, e.g. http://127.0.0.1:8000")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--concurrency", type=int, default=8, help="clients on the mixed load")
    ap.add_argument("--long-clients", type=int, default=2, help="clients sending only long prompts")
    ap.add_argument("--long-words", type=int, nargs=2, default=(250, 400), metavar=("MIN", "MAX"),
                    help="length of the long prompts in words (about one token each)")
    ap.add_argument("--model", default="")
    ap.add_argument("--pid", type=int, help="server process, for its resident memory")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=300, help="seconds a client waits for one request")
    ap.add_argument("--api-key", default="EMPTY")
    ap.add_argument("--json", type=Path, help="write the report here")
    args = ap.parse_args()
    rep = asyncio.run(run(args.base, args.seconds, args.concurrency, args.model, args.pid, args.seed, api_key=args.api_key, long_clients=args.long_clients,
                         long_words=tuple(args.long_words), timeout=args.timeout))
    if args.json:
        args.json.write_text(json.dumps(rep, indent=2))
    print(markdown(rep))
    bad = rep["by_outcome"].get("error", 0) or rep["by_outcome"].get("timeout", 0) or rep["end_running"] != 0 or rep["end_kv_usage"] != 0 or rep["reset_prefix_cache_status"] != 200
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    main()
