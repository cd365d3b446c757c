"""/metrics of a fresh vllmd, checked with Prometheus' own parser (prometheus_client) through
scripts/check_metrics.py: every vLLM family present with its type and model_name label, and the
counters moved by exactly the amounts of a known workload."""

import subprocess
import sys
import time

import openai
import pytest

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


def families(text):
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name: f for f in text_string_to_metric_families(text)}


def value(fams, family, sample):
    return next(s.value for s in fams[family].samples if s.name == sample)


def test_the_references_metric_names_and_its_hidden_deprecated_set():
    """Dashboards built on the reference's names find the same numbers as on vLLM v1's names;
    the deprecated set appears only with --show-hidden-metrics-for-version."""
    server = Server("--served-model-name", "m", "--show-hidden-metrics-for-version", "0.9")
    try:
        client = openai.OpenAI(base_url=server.base + "/v1", api_key="none", max_retries=0)
        prompt = list(range(1000, 1040))  # 40 tokens: two full 16-token blocks to reuse
        for max_tokens in (3, 5):
            client.completions.create(model="m", prompt=prompt, max_tokens=max_tokens, temperature=0, extra_body={"ignore_eos": True})
        time.sleep(1.0)
        fams = families(server.get("/metrics"))
    finally:
        server.stop()
    # prometheus_client strips `_total` from counter family names.
    queries = value(fams, "vllm:gpu_prefix_cache_queries", "vllm:gpu_prefix_cache_queries_total")
    hits = value(fams, "vllm:gpu_prefix_cache_hits", "vllm:gpu_prefix_cache_hits_total")
    assert queries == value(fams, "vllm:prefix_cache_queries", "vllm:prefix_cache_queries_total") == 80
    assert hits == value(fams, "vllm:prefix_cache_hits", "vllm:prefix_cache_hits_total") == 32
    assert fams["vllm:gpu_cache_usage_perc"].type == "gauge"
    assert value(fams, "vllm:gpu_cache_usage_perc", "vllm:gpu_cache_usage_perc") == value(fams, "vllm:kv_cache_usage_perc", "vllm:kv_cache_usage_perc")
    h = "vllm:request_max_num_generation_tokens"
    assert fams[h].type == "histogram"
    assert value(fams, h, h + "_count") == 2 and value(fams, h, h + "_sum") == 8
    assert value(fams, "vllm:gpu_prefix_cache_hit_rate", "vllm:gpu_prefix_cache_hit_rate") == pytest.approx(32 / 80)
    assert value(fams, "vllm:num_requests_swapped", "vllm:num_requests_swapped") == 0
    assert value(fams, "vllm:time_in_queue_requests", "vllm:time_in_queue_requests_count") == 2
    for name in ("vllm:cpu_cache_usage_perc", "vllm:cpu_prefix_cache_hit_rate", "vllm:model_forward_time_milliseconds", "vllm:model_execute_time_milliseconds"):
        assert name in fams, name


def test_deprecated_metrics_stay_hidden_without_the_flag(server):
    fams = families(server.get("/metrics"))
    assert "vllm:gpu_cache_usage_perc" in fams
    for name in ("vllm:num_requests_swapped", "vllm:gpu_prefix_cache_hit_rate", "vllm:time_in_queue_requests"):
        assert name not in fams, name
