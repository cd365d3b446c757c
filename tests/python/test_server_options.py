"""Server options beyond the OpenAI API: h11 header limits, --chat-template-content-format,
VLLM_SERVER_DEV_MODE (/server_info, /reset_prefix_cache) and VLLM_LOGGING_CONFIG_PATH, against one real vllmd."""

import http.client
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import ROOT, Server

# Iterates over each message's content parts: `auto` must hand it the OpenAI list of parts.
PARTS_TEMPLATE = "{% for message in messages %}{{ message['role'] }}:{% for part in message['content'] %}<{{ part['text'] }}>{% endfor %}|{% endfor %}"
STRING_TEMPLATE = "{% for message in messages %}{{ message['role'] }}:{{ message['content'] }}|{% endfor %}"


@pytest.fixture(scope="module")
def opts_server(tmp_path_factory):
    d = tmp_path_factory.mktemp("opts")
    template = d / "parts.jinja"
    template.write_text(PARTS_TEMPLATE)
    log = d / "vllmd.log"
    config = d / "logging.json"
    config.write_text(json.dumps({
        "version": 1,
        "formatters": {"plain": {"format": "%(message)s"}},
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(log), "formatter": "plain"}},
        "loggers": {"vllm": {"level": "INFO", "handlers": ["file"], "propagate": False}},
        "root": {"level": "INFO", "handlers": ["file"]},
    }))
    s = Server("--chat-template", str(template), "--h11-max-header-count", "16", "--h11-max-incomplete-event-size", "16384", "--api-key", "k",
               env={"VLLM_SERVER_DEV_MODE": "1", "VLLM_LOGGING_CONFIG_PATH": str(config)})
    s.log = log
    yield s
    s.stop()


def raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def status_line(answer: bytes) -> str:
    return answer.split(b"\r\n", 1)[0].decode()


def test_too_many_headers_are_refused_and_the_server_keeps_serving(opts_server):
    extra = "".join(f"X-Filler-{i}: {i}\r\n" for i in range(40))
    answer = raw(opts_server.port, f"GET /health HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n".encode())
    assert status_line(answer).split()[1] in ("431", "400"), answer[:200]
    # Under the limit is fine, on a fresh connection.
    few = "".join(f"X-Filler-{i}: {i}\r\n" for i in range(8))
    answer = raw(opts_server.port, f"GET /health HTTP/1.1\r\nHost: x\r\n{few}Connection: close\r\n\r\n".encode())
    assert status_line(answer).split()[1] == "200"


def test_oversized_header_block_is_refused(opts_server):
    answer = raw(opts_server.port, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\nConnection: close\r\n\r\n")
    assert status_line(answer).split()[1] in ("431", "400"), answer[:200]
    assert opts_server.get("/health") == ""


def tokenize_text(server, body: dict) -> str:
    req = urllib.request.Request(server.base + "/tokenize", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        tokens = json.loads(r.read())["tokens"]
    req = urllib.request.Request(server.base + "/detokenize", data=json.dumps({"tokens": tokens}).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["prompt"]


def test_auto_content_format_gives_parts_to_a_template_that_loops_over_them(opts_server):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
    assert tokenize_text(opts_server, {"messages": messages, "add_generation_prompt": False}) == "system:<be brief>|user:<a><b>|"


def post_json(server, path: str, body: dict) -> dict:
    req = urllib.request.Request(server.base + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", "Authorization": "Bearer k"})
    with urllib.request.urlopen(req, timeout=120) as r:
        assert r.status == 200
        return json.loads(r.read())


def token_count(server, text: str) -> int:
    return post_json(server, "/tokenize", {"prompt": text, "add_special_tokens": False})["count"]


def test_chat_uses_the_rendered_parts(opts_server):
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}], "max_tokens": 4, "temperature": 0, "logprobs": False}
    usage = post_json(opts_server, "/v1/chat/completions", body)["usage"]
    # The prompt is exactly the rendered template: "user:<Hello>|".
    assert usage["prompt_tokens"] == token_count(opts_server, "user:<Hello>|")


def test_string_format_for_a_request_template_that_does_not_loop(opts_server):
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}], "max_tokens": 1,
            "chat_template": STRING_TEMPLATE, "echo": False}
    usage = post_json(opts_server, "/v1/chat/completions", body)["usage"]
    assert usage["prompt_tokens"] == token_count(opts_server, "user:a\nb|")


def test_dev_mode_serves_server_info_without_secrets(opts_server):
    info = json.loads(opts_server.get("/server_info?config_format=json"))
    config = info["vllm_config"]
    assert config["h11_max_header_count"] == 16
    assert config["api_key"] == "<redacted>"
    text = json.loads(opts_server.get("/server_info"))
    assert isinstance(text["vllm_config"], str) and '"k"' not in text["vllm_config"]


def test_server_info_is_404_without_dev_mode(server):
    with pytest.raises(urllib.error.HTTPError) as e:
        server.get("/server_info")
    assert e.value.code == 404


def test_logging_config_file_gets_the_log(opts_server):
    text = opts_server.log.read_text()
    assert "ready: serving" in text
    # What has no equivalent is said once, at start-up.
    assert "ignored" in text and "formatters" in text


def test_bad_logging_config_is_a_startup_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    out = subprocess.run([str(ROOT / "target" / "release" / "vllmd"), "--port", "0"], env={"VLLM_LOGGING_CONFIG_PATH": str(bad), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "VLLM_LOGGING_CONFIG_PATH" in out.stderr and "bad.json" in out.stderr


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost", timeout=30)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(self.unix_path)


def test_unix_socket_serves_with_the_same_limits(tmp_path):
    path = tmp_path / "vllmd.sock"
    proc = subprocess.Popen([str(ROOT / "target" / "release" / "vllmd"), "--uds", str(path), "--max-model-len", "2048", "--h11-max-header-count", "16"],
                            env={**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"}, stdout=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while True:
            assert proc.poll() is None, "vllmd exited during start-up"
            try:
                conn = UnixHTTPConnection(str(path))
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            assert time.time() < deadline, "vllmd did not become healthy on its socket"
            time.sleep(0.2)
        conn = UnixHTTPConnection(str(path))
        conn.request("POST", "/v1/completions", body=json.dumps({"prompt": "Hi", "max_tokens": 2}), headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        assert r.status == 200 and json.loads(r.read())["choices"]
        conn = UnixHTTPConnection(str(path))
        conn.request("GET", "/health", headers={f"X-Filler-{i}": str(i) for i in range(40)})
        assert conn.getresponse().status in (431, 400)
    finally:
        proc.terminate()
        assert proc.wait(timeout=40) == 0


def prefix_cache_hits(server) -> float:
    from prometheus_client.parser import text_string_to_metric_families
    for family in text_string_to_metric_families(server.get("/metrics")):
        if family.name == "vllm:prefix_cache_hits":
            return sum(s.value for s in family.samples if s.name.endswith("_total"))
    raise AssertionError("vllm:prefix_cache_hits missing from /metrics")


def complete(server, prompt: str) -> None:
    post_json(server, "/v1/completions", {"prompt": prompt, "max_tokens": 1, "temperature": 0})


def test_dev_mode_reset_prefix_cache_forgets_cached_blocks(opts_server):
    # Long enough for several full 16-token blocks: a repeat hits the cache, a repeat after the
    # reset does not.
    prompt = "The quick brown fox jumps over the lazy dog while the cat watches. " * 8
    complete(opts_server, prompt)
    before = prefix_cache_hits(opts_server)
    complete(opts_server, prompt)
    after_repeat = prefix_cache_hits(opts_server)
    assert after_repeat > before, "the repeated prompt should hit the prefix cache"
    # 409 means requests still hold blocks; the ones above have finished, so it can only be a
    # moment's race with the engine freeing them.
    for _ in range(20):
        req = urllib.request.Request(opts_server.base + "/reset_prefix_cache", data=b"", method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                assert r.status == 200
                break
        except urllib.error.HTTPError as e:
            assert e.code == 409, e.read()
            time.sleep(0.1)
    else:
        raise AssertionError("the prefix cache was never reset")
    complete(opts_server, prompt)
    assert prefix_cache_hits(opts_server) == after_repeat, "no hit may survive the reset"


def test_reset_prefix_cache_is_404_without_dev_mode(server):
    req = urllib.request.Request(server.base + "/reset_prefix_cache", data=b"", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=30)
    assert e.value.code == 404
