"""The pooling runner end to end: `vllmd --runner pooling` on the default model against
transformers' embeddings (engine/tests/fixtures/pooling, made by scripts/make-pooling-reference.py),
tiny `*ForSequenceClassification` checkpoints against transformers' logits (made by
scripts/make-tiny-poolers.py), through the official `openai` client and plain HTTP."""

import base64
import json
import math
import struct
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, Server

FIXTURES = ROOT / "engine" / "tests" / "fixtures"
EMBED_REF = json.loads((FIXTURES / "pooling" / "smollm2-135m-q4_1.json").read_text())
TINY = FIXTURES / "tiny-pooling"


def post(server, path, body):
    req = urllib.request.Request(server.base + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def softmax(v):
    m = max(v)
    e = [math.exp(x - m) for x in v]
    return [x / sum(e) for x in e]


@pytest.fixture(scope="module")
def embed_server():
    s = Server("--runner", "pooling")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def embed_client(embed_server):
    import openai

    return openai.OpenAI(base_url=embed_server.base + "/v1", api_key="none", max_retries=0, timeout=120)


def test_embeddings_match_transformers_float_and_base64(embed_client):
    prompts = [c["prompt"] for c in EMBED_REF["cases"]]
    res = embed_client.embeddings.create(model="SmolLM2-135M-Instruct.Q4_1.gguf", input=prompts, encoding_format="float")
    assert [d.index for d in res.data] == [0, 1, 2]
    assert res.usage.prompt_tokens == sum(len(c["token_ids"]) for c in EMBED_REF["cases"])
    for d, case in zip(res.data, EMBED_REF["cases"]):
        want = case["last"]["embedding"]
        assert len(d.embedding) == len(want)
        assert cosine(d.embedding, want) >= 0.9999
        assert max(abs(a - b) for a, b in zip(d.embedding, want)) < 2e-3
    b64 = embed_client.embeddings.create(model="SmolLM2-135M-Instruct.Q4_1.gguf", input=prompts, encoding_format="base64")
    for d, f in zip(b64.data, res.data):
        raw = base64.b64decode(d.embedding)
        decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
        assert decoded == pytest.approx(f.embedding, abs=1e-7)
    # No encoding_format: the client asks for base64 and decodes it itself.
    auto = embed_client.embeddings.create(model="SmolLM2-135M-Instruct.Q4_1.gguf", input=prompts[0])
    assert list(auto.data[0].embedding) == pytest.approx(res.data[0].embedding, abs=1e-7)


def test_batched_equals_one_by_one_and_token_inputs(embed_client, embed_server):
    prompts = [c["prompt"] for c in EMBED_REF["cases"]]
    batch = embed_client.embeddings.create(model="SmolLM2-135M-Instruct.Q4_1.gguf", input=prompts, encoding_format="float").data
    for p, b in zip(prompts, batch):
        one = embed_client.embeddings.create(model="SmolLM2-135M-Instruct.Q4_1.gguf", input=p, encoding_format="float").data[0]
        assert one.embedding == pytest.approx(b.embedding, abs=1e-5)
    ids = [c["token_ids"] for c in EMBED_REF["cases"]]
    status, by_ids = post(embed_server, "/v1/embeddings", {"input": ids})
    assert status == 200
    for d, b in zip(by_ids["data"], batch):
        assert d["embedding"] == pytest.approx(b.embedding, abs=1e-5)
    status, one_ids = post(embed_server, "/v1/embeddings", {"input": ids[0]})
    assert status == 200 and one_ids["usage"]["prompt_tokens"] == len(ids[0])


def test_dimensions_truncation_messages_and_pooling(embed_server):
    status, r = post(embed_server, "/v1/embeddings", {"input": "hello world", "dimensions": 64})
    assert status == 200
    v = r["data"][0]["embedding"]
    assert len(v) == 64 and math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-5)
    long = " ".join(["word"] * 3000)
    status, r = post(embed_server, "/v1/embeddings", {"input": long})
    assert status == 400 and r["error"]["type"] == "BadRequestError"
    status, r = post(embed_server, "/v1/embeddings", {"input": long, "truncate_prompt_tokens": 10})
    assert status == 200 and r["usage"]["prompt_tokens"] == 10
    status, r = post(embed_server, "/v1/embeddings", {"messages": [{"role": "user", "content": "Hi there"}]})
    assert status == 200 and len(r["data"]) == 1 and r["usage"]["prompt_tokens"] > 3
    status, r = post(embed_server, "/pooling", {"input": ["a", "b"]})
    assert status == 200 and [d["object"] for d in r["data"]] == ["pooling", "pooling"]
    assert len(r["data"][0]["data"]) == EMBED_REF["hidden_size"]


def test_similarity_score_and_rerank_with_an_embedding_model(embed_server):
    texts = ["The cat sat on the mat.", "A feline rested on a rug.", "Stock markets fell sharply."]
    _, emb = post(embed_server, "/v1/embeddings", {"input": texts})
    vecs = [d["embedding"] for d in emb["data"]]
    status, r = post(embed_server, "/v1/score", {"text_1": texts[0], "text_2": texts[1:]})
    assert status == 200 and [d["index"] for d in r["data"]] == [0, 1]
    for d, v in zip(r["data"], vecs[1:]):
        assert d["score"] == pytest.approx(cosine(vecs[0], v), abs=1e-5)
    status, rr = post(embed_server, "/rerank", {"query": texts[0], "documents": texts[1:], "top_n": 1})
    assert status == 200 and len(rr["results"]) == 1
    best = max(range(2), key=lambda i: r["data"][i]["score"])
    assert rr["results"][0]["index"] == best
    assert rr["results"][0]["document"]["text"] == texts[1 + best]
    assert rr["results"][0]["relevance_score"] == pytest.approx(r["data"][best]["score"], abs=1e-6)


def test_bad_inputs_and_wrong_endpoints_get_400(embed_server, server):
    for body in [{"input": ""}, {"input": []}, {"input": [[]]}, {"input": 5}, {"input": "x", "encoding_format": "hex"}, {}]:
        status, r = post(embed_server, "/v1/embeddings", body)
        assert status == 400, body
        assert "message" in r["error"]
    status, r = post(embed_server, "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})
    assert status == 400 and "pooling" in r["error"]["message"]
    status, r = post(embed_server, "/v1/completions", {"prompt": "hi"})
    assert status == 400
    status, r = post(embed_server, "/classify", {"input": "hi"})
    assert status == 400 and "classify" in r["error"]["message"]
    # The generate server (the default model, --api-key) refuses the pooling endpoints.
    req = urllib.request.Request(server.base + "/v1/embeddings", data=b'{"input": "hi"}',
                                 headers={"Content-Type": "application/json", "Authorization": "Bearer test-key-123"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=30)
    assert e.value.code == 400 and "generate runner" in json.loads(e.value.read())["error"]["message"]


def test_pooling_requests_are_counted_in_the_metrics(embed_server):
    from prometheus_client.parser import text_string_to_metric_families

    def counts():
        fams = {f.name: f for f in text_string_to_metric_families(embed_server.get("/metrics"))}
        ok = sum(s.value for s in fams["vllm:request_success"].samples if s.labels.get("finished_reason") == "stop" and s.name.endswith("_total"))
        prompt = sum(s.value for s in fams["vllm:prompt_tokens"].samples if s.name.endswith("_total"))
        return ok, prompt

    before = counts()
    status, r = post(embed_server, "/v1/embeddings", {"input": ["one two three", "four"]})
    assert status == 200
    import time

    for _ in range(50):
        after = counts()
        if after[0] >= before[0] + 2:
            break
        time.sleep(0.2)
    assert after[0] == before[0] + 2
    assert after[1] == before[1] + r["usage"]["prompt_tokens"]


def tiny_server(name):
    return Server("--model", str(TINY / name), env={"VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"})


def test_cross_encoder_classify_score_and_rerank():
    exp = json.loads((TINY / "qwen3-cls-1label" / "expected.json").read_text())
    s = tiny_server("qwen3-cls-1label")
    try:
        status, r = post(s, "/classify", {"input": [c["text"] for c in exp["singles"]]})
        assert status == 200
        for d, c in zip(r["data"], exp["singles"]):
            assert d["num_classes"] == 1 and d["label"] == "score"
            assert d["probs"][0] == pytest.approx(sigmoid(c["logits"][0]), abs=1e-5)
        for path in ["/score", "/v1/score"]:
            status, r = post(s, path, {"text_1": [p["text_1"] for p in exp["pairs"]], "text_2": [p["text_2"] for p in exp["pairs"]]})
            assert status == 200, r
            for d, p in zip(r["data"], exp["pairs"]):
                assert d["object"] == "score"
                assert d["score"] == pytest.approx(sigmoid(p["logits"][0]), abs=1e-5)
        q = exp["pairs"][0]["text_1"]
        same_query = [p for p in exp["pairs"] if p["text_1"] == q]
        docs = [p["text_2"] for p in same_query]
        want = sorted(range(len(docs)), key=lambda i: -same_query[i]["logits"][0])
        for path in ["/rerank", "/v1/rerank", "/v2/rerank"]:
            status, r = post(s, path, {"query": q, "documents": docs, "return_documents": path != "/v2/rerank"})
            assert status == 200, r
            assert [x["index"] for x in r["results"]] == want
            assert r["results"][0]["relevance_score"] == pytest.approx(sigmoid(same_query[want[0]]["logits"][0]), abs=1e-5)
            assert (r["results"][0]["document"] is None) == (path == "/v2/rerank")
        status, r = post(s, "/v1/embeddings", {"input": "t5"})
        assert status == 400
    finally:
        s.stop()


def test_multi_label_classifier_softmax_and_labels():
    exp = json.loads((TINY / "qwen2-cls-3labels" / "expected.json").read_text())
    s = tiny_server("qwen2-cls-3labels")
    try:
        status, r = post(s, "/classify", {"input": [c["text"] for c in exp["singles"]]})
        assert status == 200
        for d, c in zip(r["data"], exp["singles"]):
            want = softmax(c["logits"])
            assert d["probs"] == pytest.approx(want, abs=1e-5)
            assert d["label"] == exp["id2label"][str(want.index(max(want)))]
        status, r = post(s, "/score", {"text_1": "t5", "text_2": "t6"})
        assert status == 400 and "one label" in r["error"]["message"]
    finally:
        s.stop()


def test_run_batch_takes_embeddings_and_score_lines(tmp_path):
    vllm = ROOT / "target" / "release" / "vllm"
    lines = [
        {"custom_id": "e", "method": "POST", "url": "/v1/embeddings", "body": {"input": EMBED_REF["cases"][0]["prompt"]}},
        {"custom_id": "s", "method": "POST", "url": "/v1/score", "body": {"text_1": "a cat", "text_2": ["a cat", "the stock market"]}},
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(l) for l in lines) + "\n")
    out = tmp_path / "out.jsonl"
    import os
    import subprocess

    env = dict(os.environ, VLLM_LOGGING_LEVEL="WARNING")
    done = subprocess.run([str(vllm), "run-batch", "-i", str(src), "-o", str(out), "--runner", "pooling", "--device", "cpu", "--max-model-len", "2048"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    results = {r["custom_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    emb = results["e"]["response"]["body"]["data"][0]["embedding"]
    assert cosine(emb, EMBED_REF["cases"][0]["last"]["embedding"]) >= 0.9999
    scores = [d["score"] for d in results["s"]["response"]["body"]["data"]]
    assert scores[0] == pytest.approx(1.0, abs=1e-5) and scores[1] < scores[0]


def test_bench_serve_measures_the_embeddings_endpoint(embed_server, tmp_path):
    """`vllm bench serve --endpoint /v1/embeddings`: every request succeeds, the input tokens it
    reports are those the server counted in its own metrics, and only E2E latency is reported."""
    from prometheus_client.parser import text_string_to_metric_families

    def prompt_tokens():
        fams = {f.name: f for f in text_string_to_metric_families(embed_server.get("/metrics"))}
        return sum(s.value for s in fams["vllm:prompt_tokens"].samples if s.name.endswith("_total"))

    import subprocess
    import time

    before = prompt_tokens()
    vllm = ROOT / "target" / "release" / "vllm"
    run = subprocess.run(
        [str(vllm), "bench", "serve", "--base-url", embed_server.base, "--endpoint", "/v1/embeddings",
         "--dataset-name", "random", "--random-input-len", "24", "--num-prompts", "8", "--max-concurrency", "4",
         "--disable-tqdm", "--save-result", "--save-detailed", "--result-dir", str(tmp_path), "--result-filename", "r.json"],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr + run.stdout
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["completed"] == 8 and saved["failed"] == 0
    assert saved["total_output_tokens"] == 0
    for _ in range(50):
        after = prompt_tokens()
        if after >= before + saved["total_input_tokens"]:
            break
        time.sleep(0.2)
    # Unless skipped, the ready check sent the first prompt once more before the run.
    checked = "Skipping endpoint ready check." not in run.stdout
    first = saved["input_lens"][0] if checked else 0
    assert after - before == saved["total_input_tokens"] + first
    assert "Mean E2EL (ms):" in run.stdout and "TTFT" not in run.stdout
    assert all(0 < t <= saved["duration"] for t in saved["latencies"])
