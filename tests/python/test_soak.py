"""The CI soak: a minute of mixed load (tests/python/loadgen.py) on the default model with a KV
cache small enough that long prompts fill it past 90% and force preemption. At the end every
request was answered or refused with an OpenAI error body, nothing is running or waiting, the KV
cache is empty and no request holds a block (the dev-mode prefix-cache reset succeeds only then).
scripts/soak.sh runs the same load for longer."""

import asyncio
import os

from conftest import Server
from loadgen import markdown, run

# 40 blocks of 16 tokens (640): one 512-token sequence fits (the engine's start-up check), two
# long prompts (250-400 tokens) do not. Small on purpose: a CI CPU prefills slowly.
KV_BLOCKS = "40"
SECONDS = float(os.environ.get("VLLM_SOAK_SECONDS", "60"))


def test_soak_mixed_load_ends_clean():
    s = Server("--max-model-len", "512", "--num-gpu-blocks-override", KV_BLOCKS, "--max-num-seqs", "16",
               env={"VLLM_SERVER_DEV_MODE": "1"})
    try:
        rep = asyncio.run(run(s.base, SECONDS, concurrency=4, model="", pid=s.proc.pid, warmup=SECONDS / 3,
                              long_clients=2, long_words=(250, 400)))
        print("\n" + markdown(rep))
        assert s.proc.poll() is None, "the server died under load"
    finally:
        s.stop()
    outcomes = rep["by_outcome"]
    assert outcomes.get("error", 0) == 0 and outcomes.get("timeout", 0) == 0, rep["errors"]
    for expected in ("ok", "refused", "hangup"):
        assert outcomes.get(expected, 0) > 0, f"no {expected} outcome in {outcomes}"
    assert rep["by_kind"].get("long", {}).get("ok", 0) > 0, rep["by_kind"]
    assert rep["max_kv_usage"] > 0.9, f"the KV cache never filled: peak {rep['max_kv_usage']:.2f}"
    assert rep["preemptions"] > 0, "no preemption happened"
    assert rep["end_running"] == 0 and rep["end_waiting"] == 0, rep
    assert rep["end_kv_usage"] == 0, f"KV blocks still in use after the load: {rep['end_kv_usage']}"
    assert rep["reset_prefix_cache_status"] == 200, "a request still holds KV blocks"
    # A minute is too short to call memory flat; a leak of one buffer per request is not.
    assert rep["rss_growth_mib"] is not None and rep["rss_growth_mib"] < 256, rep
