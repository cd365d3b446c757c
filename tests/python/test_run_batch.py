"""`vllm run-batch`: input and output over https (GET and PUT against a local TLS file server),
and `--enable-metrics` scraped with Prometheus' own parser while the batch runs."""

import json
import os
import ssl
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import ROOT, free_port

VLLM = ROOT / "target" / "release" / "vllm"


def batch_lines(n: int, max_tokens: int) -> str:
    lines = []
    for i in range(n):
        body = {"messages": [{"role": "user", "content": f"Count to {i + 3}."}], "max_tokens": max_tokens, "temperature": 0}
        lines.append(json.dumps({"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}))
    lines.append("{not json")
    return "\n".join(lines) + "\n"


class FileServer:
    """GET /in.jsonl answers `content`; PUT stores the body in `uploads`."""

    def __init__(self, content: str, context: ssl.SSLContext):
        uploads = self.uploads = {}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                data = content.encode()
                self.send_response(200 if self.path == "/in.jsonl" else 404)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self):
                uploads[self.path] = self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


def run_env(**extra) -> dict:
    env = dict(os.environ)
    env.pop("VLLM_LOGGING_LEVEL", None)
    env.update(extra)
    return env


def test_input_and_output_over_https(certs):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(certs / "server.pem"), str(certs / "server.key"))
    files = FileServer(batch_lines(4, 8), ctx)
    try:
        base = f"https://127.0.0.1:{files.port}"
        out = subprocess.run([str(VLLM), "run-batch", "-i", f"{base}/in.jsonl", "-o", f"{base}/out.jsonl", "--max-model-len", "2048"],
                             env=run_env(SSL_CERT_FILE=str(certs / "ca.pem")), capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        results = [json.loads(line) for line in files.uploads["/out.jsonl"].decode().splitlines()]
        assert len(results) == 5
        for i, r in enumerate(results[:4]):
            assert r["custom_id"] == f"req-{i}"
            assert r["error"] is None and r["response"]["status_code"] == 200, r
            assert r["response"]["body"]["choices"][0]["message"]["content"]
        assert results[4]["error"] is not None

        # Without the CA the download is refused, in one line, before any model load.
        out = subprocess.run([str(VLLM), "run-batch", "-i", f"{base}/in.jsonl", "-o", "unused.jsonl"], env=run_env(), capture_output=True, text=True, timeout=120)
        assert out.returncode != 0
        assert "certificate" in out.stderr and "panicked" not in out.stderr, out.stderr
    finally:
        files.close()


def test_metrics_are_served_during_the_run(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(batch_lines(24, 48))
    port = free_port()
    proc = subprocess.Popen([str(VLLM), "run-batch", "-i", str(src), "-o", str(tmp_path / "out.jsonl"), "--enable-metrics", "--url", "127.0.0.1", "--port", str(port),
                             "--max-model-len", "2048"], env=run_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    scrapes = []
    try:
        deadline = time.time() + 300
        while proc.poll() is None and time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    scrapes.append({f.name: f for f in text_string_to_metric_families(r.read().decode())})
            except OSError:
                pass
            time.sleep(0.2)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert scrapes, "no successful scrape while the batch ran"
    last = scrapes[-1]
    for name, kind in [("vllm:num_requests_running", "gauge"), ("vllm:num_requests_waiting", "gauge"), ("vllm:prompt_tokens", "counter"),
                       ("vllm:generation_tokens", "counter"), ("vllm:time_to_first_token_seconds", "histogram"), ("vllm:kv_cache_usage_perc", "gauge")]:
        assert name in last and last[name].type == kind, name

    def value(scrape, name):
        return sum(s.value for s in scrape[name].samples if s.name in (name, name + "_total"))

    busy = max(value(s, "vllm:num_requests_running") + value(s, "vllm:num_requests_waiting") for s in scrapes)
    assert busy > 0, "no scrape saw the batch's requests in flight"
    assert max(value(s, "vllm:generation_tokens") for s in scrapes) > 0
    results = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(results) == 25 and sum(r["error"] is not None for r in results) == 1


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_unreachable_input_url_is_one_line(scheme):
    port = free_port()
    out = subprocess.run([str(VLLM), "run-batch", "-i", f"{scheme}://127.0.0.1:{port}/in.jsonl", "-o", "unused.jsonl"], env=run_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "cannot connect" in out.stderr and "panicked" not in out.stderr, out.stderr
