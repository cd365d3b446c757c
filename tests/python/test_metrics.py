"""/metrics of a fresh vllmd, checked with Prometheus' own parser (prometheus_client) through
scripts/check_metrics.py: every vLLM family present with its type and model_name label, and the
counters moved by exactly the amounts of a known workload."""

import subprocess
import sys
import time

import openai

from conftest import ROOT, Server


def test_counters_follow_a_known_workload(tmp_path):
    server = Server("--served-model-name", "metrics-model")
    try:
        client = openai.OpenAI(base_url=server.base + "/v1", api_key="none", max_retries=0)
        prompt_ids = [6403, 1980, 253, 655, 28, 281, 253]  # 7 tokens of "Once upon a time, in a"
        for _ in range(3):
            client.completions.create(model="metrics-model", prompt=prompt_ids, max_tokens=5, temperature=0,
                                      extra_body={"ignore_eos": True})
        stopped = client.completions.create(model="metrics-model", prompt=prompt_ids, max_tokens=20, temperature=0,
                                            stop=[" a"], extra_body={"ignore_eos": True})
        assert stopped.choices[0].finish_reason == "stop"
        gen_tokens = 15 + stopped.usage.completion_tokens
        time.sleep(1.0)  # the stats poller runs every 0.5 s; /metrics also polls on scrape
        text = server.get("/metrics")
        path = tmp_path / "metrics.txt"
        path.write_text(text)
        expects = [
            "vllm:prompt_tokens_total=28",
            f"vllm:generation_tokens_total={gen_tokens}",
            'vllm:request_success_total{finished_reason="length"}=3',
            'vllm:request_success_total{finished_reason="stop"}=1',
            "vllm:e2e_request_latency_seconds_count=4",
            "vllm:time_to_first_token_seconds_count=4",
            f"vllm:inter_token_latency_seconds_count={gen_tokens - 4}",
            "vllm:request_prompt_tokens_count=4",
            "vllm:request_prompt_tokens_sum=28",
            f"vllm:request_generation_tokens_sum={gen_tokens}",
            "vllm:num_requests_running=0",
            "vllm:num_requests_waiting=0",
            "vllm:kv_cache_usage_perc=0",
            "vllm:request_params_n_count=4",
            # The same prompt four times: blocks are 16 tokens, so a 7-token prompt has no full
            # block and the prefix cache can never hit.
            "vllm:prefix_cache_hits_total=0",
            'http_requests_total{handler="/v1/completions",status="2xx"}=4',
        ]
        cmd = [sys.executable, str(ROOT / "scripts" / "check_metrics.py"), str(path), "--model-name", "metrics-model"]
        for e in expects:
            cmd += ["--expect", e]
        r = subprocess.run(cmd, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        server.stop()
