"""64 concurrent streaming clients, some of which hang up mid-stream: every other client gets
exactly its non-streamed text; the server aborts each abandoned request long before its natural
end (seen in `vllm:request_success_total{finished_reason="abort"}` and the generated-token count,
read with prometheus_client's parser); afterwards nothing is left running and no KV block is held."""

import http.client
import json
import threading
import time

from conftest import API_KEY

PROMPTS = ["Once upon a time", "The capital of Japan is", "def fibonacci(n):", "Here is a list of the planets:",
           "The history of the public library", "My favourite food is", "In 1969, astronauts", "The best way to learn"]


def request(server, body, read_events=None):
    """POSTs a completion; returns the streamed text, or None when it hung up on purpose."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
    conn.request("POST", "/v1/completions", body=json.dumps(body),
                  headers={"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"})
    r = conn.getresponse()
    assert r.status == 200
    if not body.get("stream"):
        out = json.loads(r.read())["choices"][0]["text"]
        conn.close()
        return out
    text, events = [], 0
    for raw in r:
        line = raw.decode().strip()
        if not line.startswith("data: "):
            continue
        data = line[len("data: "):]
        if data == "[DONE]":
            break
        text.append(json.loads(data)["choices"][0]["text"])
        events += 1
        if read_events is not None and events >= read_events:
            conn.close()  # hang up mid-stream
            return None
    conn.close()
    return "".join(text)


def metric(server, name, **labels):
    """The sum of the samples called `name` whose labels include `labels` (prometheus_client's
    own parser reads the exposition)."""
    from prometheus_client.parser import text_string_to_metric_families

    found, total = False, 0.0
    for family in text_string_to_metric_families(server.get("/metrics")):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                found, total = True, total + s.value
    assert found, f"{name}{labels} not in /metrics"
    return total


# Clients that hang up ask for far more tokens than they read: if the server did not abort on
# disconnect, each would run to this length (ignore_eos), which the token count below rules out.
ABANDONED_MAX_TOKENS = 1500


def test_64_streams_with_disconnects(server):
    bodies = [{"model": "smollm2", "prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": 24, "temperature": 0, "stream": True}
              for i in range(64)]
    for i in range(0, 64, 4):
        bodies[i] = {**bodies[i], "max_tokens": ABANDONED_MAX_TOKENS, "ignore_eos": True}
    expected = {p: request(server, {**bodies[1], "prompt": p, "stream": False}) for p in PROMPTS}
    aborted_before = metric(server, "vllm:request_success_total", finished_reason="abort")
    finished_before = metric(server, "vllm:request_success_total")
    tokens_before = metric(server, "vllm:generation_tokens_total")
    results = [None] * 64
    errors = []

    def run(i):
        try:
            results[i] = request(server, bodies[i], read_events=3 if i % 4 == 0 else None)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append((i, repr(e)))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i, text in enumerate(results):
        if i % 4 == 0:
            assert text is None
        else:
            assert text == expected[bodies[i]["prompt"]], i
    # A guard against a hang, not a speed requirement: the 16 aborts are counted once the engine
    # has noticed each hang-up.
    deadline = time.time() + 300
    while time.time() < deadline:
        if (metric(server, "vllm:num_requests_running") == 0 and metric(server, "vllm:num_requests_waiting") == 0
                and metric(server, "vllm:request_success_total") - finished_before >= 64):
            break
        time.sleep(0.5)
    assert metric(server, "vllm:request_success_total", finished_reason="abort") - aborted_before == 16
    assert metric(server, "vllm:request_success_total") - finished_before == 64
    # 48 answers of at most 24 tokens, and 16 abandoned ones stopped after a few tokens each
    # (not 16 * 1500 tokens).
    generated = metric(server, "vllm:generation_tokens_total") - tokens_before
    assert generated <= 48 * 24 + 16 * 200, generated
    assert metric(server, "vllm:num_requests_running") == 0
    assert metric(server, "vllm:num_requests_waiting") == 0
    assert metric(server, "vllm:kv_cache_usage_perc") == 0
