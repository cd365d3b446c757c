"""64 concurrent streaming clients, some of which hang up mid-stream: every other client gets
exactly its non-streamed text, and afterwards nothing is left running and no KV block is held."""

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


def metric(server, name):
    for line in server.get("/metrics").splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_64_streams_with_disconnects(server):
    bodies = [{"model": "smollm2", "prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": 24, "temperature": 0, "stream": True}
              for i in range(64)]
    expected = {p: request(server, {**bodies[0], "prompt": p, "stream": False}) for p in PROMPTS}
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
    deadline = time.time() + 30
    while time.time() < deadline:
        if metric(server, "vllm:num_requests_running") == 0 and metric(server, "vllm:num_requests_waiting") == 0:
            break
        time.sleep(0.5)
    assert metric(server, "vllm:num_requests_running") == 0
    assert metric(server, "vllm:num_requests_waiting") == 0
    assert metric(server, "vllm:kv_cache_usage_perc") == 0
