"""Faults and hostile clients against a real `vllmd`: a slowloris client, a client that stops
reading its stream, 2,000 idle keep-alive connections, an engine thread that panics (dev-mode
hook), SIGTERM under load, and `vllm run-batch` writing where it cannot."""

import json
import os
import resource
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import openai
import pytest

from conftest import ROOT, Server
from loadgen import rss_bytes

VLLM = ROOT / "target" / "release" / "vllm"
KEEP_ALIVE_S = 2


@pytest.fixture(scope="module")
def srv():
    # A KV cache just over one max-length sequence (140 blocks of 16 tokens): the stalled-reader
    # test's warm-up touches most of its pages, so RSS growth there is not first-touched KV
    # memory (46 KB per token for the default model).
    s = Server("--num-gpu-blocks-override", "140", env={"VLLM_HTTP_TIMEOUT_KEEP_ALIVE": str(KEEP_ALIVE_S)})
    yield s
    s.stop()


def client_of(s: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=s.base + "/v1", api_key="EMPTY", max_retries=0, timeout=120)


def counter(s: Server, name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    return sum(x.value for f in text_string_to_metric_families(s.get("/metrics")) for x in f.samples if x.name == name)


def closed_by_peer(sock: socket.socket, within: float) -> float | None:
    """Seconds until the server closes `sock` (reads until EOF), or None if it stays open."""
    start = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - start < within:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - start
        except socket.timeout:
            continue
        except OSError:
            return time.monotonic() - start
    return None


def test_slowloris_is_cut_off_without_engine_work(srv):
    prompts_before = counter(srv, "vllm:prompt_tokens_total")
    request = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: 40\r\nX-Slow: " + b"a" * 200)
    sock = socket.create_connection(("127.0.0.1", srv.port))
    start = time.monotonic()
    cut = None
    try:
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                cut = time.monotonic() - start
                break
            if (t := closed_by_peer(sock, 1.0)) is not None:
                cut = time.monotonic() - start
                break
    finally:
        sock.close()
    # The header read timeout is VLLM_HTTP_TIMEOUT_KEEP_ALIVE (uvicorn's default is 5 s).
    assert cut is not None, "the server kept a one-byte-a-second client for the whole request"
    assert cut < KEEP_ALIVE_S + 3, f"cut off only after {cut:.1f} s"
    assert counter(srv, "vllm:prompt_tokens_total") == prompts_before, "the slow client cost engine work"


def timed_chat(s: Server) -> float:
    start = time.monotonic()
    r = client_of(s).chat.completions.create(model="", messages=[{"role": "user", "content": "Say hi."}], max_tokens=8, temperature=0)
    assert r.choices[0].finish_reason in ("stop", "length")
    return time.monotonic() - start


def test_a_stalled_stream_reader_is_bounded_and_does_not_block_others(srv):
    baseline = min(timed_chat(srv) for _ in range(3))
    request = {"model": "", "prompt": "Once upon a time", "max_tokens": 1500, "ignore_eos": True}
    # The same long generation once, read to the end: the server's working buffers for a
    # 1500-token context are then allocated, so what grows below is the stalled stream's.
    warm = {k: v for k, v in request.items() if k != "ignore_eos"}

    def read_long_stream():
        for _ in client_of(srv).completions.create(**warm, extra_body={"ignore_eos": True}, stream=True):
            pass

    # Beside the same short chats as below: the batch shapes (and so the allocator's high-water
    # mark) of the measured phase are reached here first.
    reader = threading.Thread(target=read_long_stream)
    reader.start()
    time.sleep(2)
    for _ in range(3):
        timed_chat(srv)
    reader.join(timeout=300)
    rss_before = rss_bytes(srv.proc.pid)
    body = json.dumps({**request, "stream": True}).encode()
    stalled = socket.socket()
    # A small receive window: the server's writes block almost at once.
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", srv.port))
    stalled.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    try:
        time.sleep(2)  # never read: the stream backs up behind the socket
        during = [timed_chat(srv) for _ in range(3)]
        # Let the stalled request run to its max_tokens; its output waits in the server.
        deadline = time.monotonic() + 120
        while counter(srv, "vllm:num_requests_running") > 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        rss_after = rss_bytes(srv.proc.pid)
    finally:
        stalled.close()
    print(f"chat latency alone {baseline:.3f} s, beside a stalled stream {during}; RSS {rss_before/2**20:.1f} -> {rss_after/2**20:.1f} MiB")
    # The stalled request shares the batch (it still generates), so allow for a second sequence.
    assert max(during) < 3 * baseline + 1.0, (baseline, during)
    # The undelivered output is bounded by the request's max_tokens (a few hundred KB of SSE).
    assert rss_after - rss_before < 64 * 2**20, (rss_before, rss_after)
    assert timed_chat(srv) < 3 * baseline + 1.0


def test_two_thousand_idle_keep_alive_connections(srv):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    n = 2000
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            socks.append(s)
        answered = 0
        for s in socks:
            data = s.recv(4096)
            answered += data.startswith(b"HTTP/1.1 200")
        assert answered == n, f"{answered} of {n} keep-alive requests answered"
        # While they idle, the server still answers promptly.
        start = time.monotonic()
        assert srv.get("/health") == ""
        assert time.monotonic() - start < 2.0
        # After VLLM_HTTP_TIMEOUT_KEEP_ALIVE every idle connection is closed by the server.
        time.sleep(KEEP_ALIVE_S + 1)
        still_open = sum(closed_by_peer(s, 3.0) is None for s in socks)
        assert still_open == 0, f"{still_open} idle connections outlived the keep-alive timeout"
    finally:
        for s in socks:
            s.close()


def stream_in_thread(s: Server, results: list, max_tokens: int = 400):
    def go():
        try:
            stream = client_of(s).completions.create(model="", prompt="Once upon a time", max_tokens=max_tokens, stream=True,
                                                     extra_body={"ignore_eos": True})
            finish = None
            for chunk in stream:
                finish = chunk.choices[0].finish_reason if chunk.choices else finish
            results.append(("finished", finish))
        except openai.APIError as e:
            results.append(("error", str(e)))
        except Exception as e:  # anything else is a failure the test reports
            results.append(("exception", repr(e)))

    t = threading.Thread(target=go)
    t.start()
    return t


@pytest.mark.parametrize("keep_alive", [False, True])
def test_engine_panic_ends_in_flight_requests_and_health(keep_alive):
    env = {"VLLM_SERVER_DEV_MODE": "1", "VLLM_RS_TEST_PANIC_AFTER_STEPS": "40"}
    if keep_alive:
        env["VLLM_KEEP_ALIVE_ON_ENGINE_DEATH"] = "1"
    s = Server(env=env)
    try:
        streamed: list = []
        t = stream_in_thread(s, streamed)
        plain: list = []

        def non_stream():
            try:
                client_of(s).completions.create(model="", prompt="Hello", max_tokens=400, extra_body={"ignore_eos": True})
                plain.append("answered")
            except openai.APIStatusError as e:
                plain.append(e.status_code)
            except openai.APIError as e:
                plain.append(type(e).__name__)

        t2 = threading.Thread(target=non_stream)
        t2.start()
        t.join(60)
        t2.join(60)
        assert not t.is_alive() and not t2.is_alive(), "an in-flight request hung after the engine died"
        assert streamed and streamed[0][0] == "error", streamed
        assert plain and plain[0] == 503, plain
        if keep_alive:
            time.sleep(1)
            assert s.proc.poll() is None, "VLLM_KEEP_ALIVE_ON_ENGINE_DEATH: the server should stay up"
            with pytest.raises(Exception) as e:
                s.get("/health")
            assert getattr(e.value, "code", None) == 503
            with pytest.raises(openai.APIStatusError) as e:
                client_of(s).completions.create(model="", prompt="Hello", max_tokens=4)
            assert e.value.status_code == 503
        else:
            assert s.proc.wait(timeout=40) != 0, "the server must exit non-zero when the engine dies"
    finally:
        s.stop()


def test_panic_hook_needs_dev_mode():
    p = subprocess.run([str(ROOT / "target" / "release" / "vllmd"), "--device", "cpu", "--port", "1"],
                       env={**os.environ, "VLLM_RS_TEST_PANIC_AFTER_STEPS": "1"}, capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    assert "VLLM_SERVER_DEV_MODE" in p.stderr


def test_sigterm_under_load_drains_and_exits_zero():
    s = Server()
    results: list = []
    threads = [stream_in_thread(s, results, max_tokens=48) for _ in range(4)]
    time.sleep(1.0)
    s.proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(90)
    code = s.proc.wait(timeout=60)
    assert results == [("finished", "length")] * 4, results
    assert code == 0


def batch_input(path: Path, n: int):
    lines = [json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/completions",
                         "body": {"prompt": f"Count to {i}", "max_tokens": 8, "temperature": 0}}) for i in range(n)]
    path.write_text("\n".join(lines) + "\n")


def run_batch(inp: Path, out: Path, preexec=None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("VLLM_LOGGING_LEVEL", None)
    return subprocess.run([str(VLLM), "run-batch", "-i", str(inp), "-o", str(out), "--device", "cpu", "--max-model-len", "2048"],
                          env=env, capture_output=True, text=True, timeout=300, preexec_fn=preexec)


def test_run_batch_unwritable_path_fails_before_work(tmp_path):
    inp = tmp_path / "in.jsonl"
    batch_input(inp, 2)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out = blocker / "out.jsonl"  # a path under a regular file: no one can create it, not even root
    start = time.monotonic()
    p = run_batch(inp, out)
    assert p.returncode == 1
    errors = [l for l in p.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and "cannot write the output file" in errors[0], p.stderr
    assert time.monotonic() - start < 30, "the unwritable output was found only after the batch ran"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a-file", "in.jsonl"]


def test_run_batch_full_disk_leaves_the_old_output(tmp_path):
    """A full disk, without root: RLIMIT_FSIZE makes writes past 2 KiB fail (EFBIG) as ENOSPC would."""
    inp = tmp_path / "in.jsonl"
    batch_input(inp, 12)
    out = tmp_path / "out.jsonl"
    out.write_text("previous results\n")

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    p = run_batch(inp, out, preexec=small_disk)
    assert p.returncode == 1, p.stderr
    errors = [l for l in p.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and "cannot write the output file" in errors[0], p.stderr
    assert out.read_text() == "previous results\n"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"], "a temporary file was left behind"
