"""Flags whose fate shows only on a running vllmd: refused flags exit 2 before anything loads,
flags without effect are named in one start-up warning line, and the HTTP layer's flags
(--root-path, the uvicorn access log and its level) behave as uvicorn/FastAPI behind vLLM do."""

import json
import os
import re
import socket
import subprocess
import time
import urllib.request

import openai
import pytest

from conftest import VLLMD, Server

ACCESS_LINE = re.compile(r'127\.0\.0\.1:\d+ - "GET /health HTTP/1\.1" 200 OK')


@pytest.mark.parametrize("args, flag", [
    (["--preemption-mode", "swap"], "--preemption-mode"),
    (["--tensor-parallel-size", "2"], "--tensor-parallel-size"),
    (["--guided-decoding-backend", "xgrammar"], "--guided-decoding-backend"),
    (["--convert", "reward"], "--convert"),
    (["--task", "reward"], "--task"),
    (["--runner", "draft"], "--runner"),
    (["--code-revision", "v1"], "--code-revision"),
])
def test_refused_flags_exit_2_before_loading(args, flag):
    r = subprocess.run([str(VLLMD), "--model", "/nonexistent/model.gguf", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert f"not supported yet: {flag}" in r.stderr
    # Refused before the model path is even looked at.
    assert "nonexistent" not in r.stderr


def wait_for(path, pattern, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = path.read_text(errors="replace")
        if re.search(pattern, text):
            return text
        time.sleep(0.1)
    return path.read_text(errors="replace")


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    log = tmp_path_factory.mktemp("flags") / "vllmd.log"
    s = Server("--root-path", "/api/", "--enforce-eager", "--swap-space", "2", "--uvicorn-log-level", "info",
               env={"VLLM_LOGGING_LEVEL": "WARNING"}, stderr=log)
    s.log = log
    yield s
    s.stop()


def test_flags_without_effect_are_named_in_one_warning_line(proxied):
    text = proxied.log.read_text(errors="replace")
    lines = [line for line in text.splitlines() if "no effect" in line]
    assert len(lines) == 1, text
    assert "--enforce-eager" in lines[0] and "--swap-space" in lines[0]
    assert "WARN" in lines[0]


def test_access_log_in_uvicorns_format_at_its_own_level(proxied):
    # VLLM_LOGGING_LEVEL=WARNING does not silence uvicorn's access log, as in vLLM.
    assert proxied.get("/health") == ""
    text = wait_for(proxied.log, ACCESS_LINE.pattern)
    assert ACCESS_LINE.search(text), text


def test_root_path_serves_behind_prefixing_and_stripping_proxies(proxied):
    for base in (proxied.base + "/api/v1", proxied.base + "/v1"):
        client = openai.OpenAI(base_url=base, api_key="none", max_retries=0, timeout=60)
        assert [m.id for m in client.models.list().data]
        out = client.completions.create(model=client.models.list().data[0].id, prompt="Hello", max_tokens=2, temperature=0)
        assert out.usage.completion_tokens <= 2
    doc = json.loads(proxied.get("/api/openapi.json"))
    assert doc["servers"] == [{"url": "/api"}]


def test_access_log_can_be_turned_off_or_quieted(tmp_path):
    for args in (["--disable-uvicorn-access-log"], ["--uvicorn-log-level", "warning"]):
        log = tmp_path / f"{args[0]}.log"
        s = Server(*args, env={"VLLM_LOGGING_LEVEL": "INFO"}, stderr=log)
        try:
            with urllib.request.urlopen(s.base + "/health", timeout=30) as r:
                assert r.status == 200
            time.sleep(0.5)
            text = log.read_text(errors="replace")
            assert not ACCESS_LINE.search(text), f"{args}: {text}"
            assert "ready" in text  # the server's own INFO lines still come through
        finally:
            s.stop()


@pytest.mark.parametrize("env, var", [
    ({"VLLM_ATTENTION_BACKEND": "NO_SUCH_BACKEND"}, "VLLM_ATTENTION_BACKEND"),
    ({"VLLM_PORT": "tcp://10.0.0.1:8000"}, "VLLM_PORT"),
])
def test_bad_environment_values_are_refused(env, var):
    r = subprocess.run([str(VLLMD), "--model", "/nonexistent/model.gguf"], capture_output=True, text=True, timeout=60,
                       env={**os.environ, **env})
    assert r.returncode == 2, r.stderr
    assert var in r.stderr


def test_environment_without_effect_is_named_in_one_warning_line(tmp_path):
    log = tmp_path / "vllmd.log"
    s = Server(env={"VLLM_HOST_IP": "10.0.0.1", "VLLM_ATTENTION_BACKEND": "FLASH_ATTN", "VLLM_NO_SUCH_SETTING": "1",
                    "VLLM_LOGGING_LEVEL": "WARNING"}, stderr=log)
    s.stop()
    lines = [line for line in log.read_text(errors="replace").splitlines() if "environment variables have no effect" in line]
    assert len(lines) == 1 and "VLLM_HOST_IP" in lines[0] and "VLLM_ATTENTION_BACKEND" in lines[0], lines
    assert "Unknown vLLM environment variable detected: VLLM_NO_SUCH_SETTING" in log.read_text(errors="replace")


def test_idle_connections_close_after_the_keep_alive_timeout():
    s = Server(env={"VLLM_HTTP_TIMEOUT_KEEP_ALIVE": "2"})
    try:
        with socket.create_connection(("127.0.0.1", s.port), timeout=30) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            assert head.startswith(b"HTTP/1.1 200")
            # Still open within the timeout...
            sock.settimeout(0.5)
            with pytest.raises(socket.timeout):
                sock.recv(1)
            # ...and closed by the server after it.
            sock.settimeout(10)
            time.sleep(2.5)
            assert sock.recv(1) == b""
    finally:
        s.stop()


def greedy_text(server, prompt="The capital of France is"):
    c = openai.OpenAI(base_url=server.base + "/v1", api_key="none", max_retries=0, timeout=60)
    name = c.models.list().data[0].id
    return c.completions.create(model=name, prompt=prompt, max_tokens=12, temperature=0, extra_body={"ignore_eos": True}).choices[0].text


def test_hf_overrides_reach_the_model_in_every_form():
    """A RoPE base far from the model's own changes its greedy output; the JSON form, the dotted
    form and --rope-theta are the same override."""
    outputs = {}
    for name, args in [
        ("plain", ()),
        ("json", ("--hf-overrides", '{"rope_theta": 10.0}')),
        ("dotted", ("--hf-overrides.rope_theta", "10.0")),
        ("rope-theta", ("--rope-theta", "10")),
    ]:
        s = Server(*args)
        try:
            outputs[name] = greedy_text(s)
        finally:
            s.stop()
    assert outputs["json"] != outputs["plain"], outputs
    assert outputs["json"] == outputs["dotted"] == outputs["rope-theta"], outputs


def test_bad_hf_overrides_fail_at_start_up(tmp_path):
    log = tmp_path / "vllmd.log"
    with pytest.raises(RuntimeError):
        Server("--hf-overrides", '{"num_attention_heads": 7}', stderr=log)
    assert "num_attention_heads" in log.read_text(errors="replace")


def test_the_deprecated_log_requests_switch_and_its_warning(tmp_path):
    for env, deprecation in (({}, True), ({"VLLM_NO_DEPRECATION_WARNING": "1"}, False)):
        log = tmp_path / f"log-{deprecation}.log"
        s = Server("--no-disable-log-requests", env={"VLLM_LOGGING_LEVEL": "INFO", **env}, stderr=log)
        try:
            greedy_text(s, "Hello there")
            time.sleep(0.3)
        finally:
            s.stop()
        text = log.read_text(errors="replace")
        assert "Received request" in text and "Hello there" in text, text
        assert ("--disable-log-requests is deprecated" in text) == deprecation, text


def test_use_tqdm_on_load_switches_the_loading_progress(tmp_path):
    for args, shown in (((), True), (("--no-use-tqdm-on-load",), False)):
        log = tmp_path / f"load-{shown}.log"
        Server(*args, env={"VLLM_LOGGING_LEVEL": "INFO"}, stderr=log).stop()
        text = log.read_text(errors="replace")
        assert ("loading model layers" in text) == shown, text
        assert "model loaded" in text


def test_runner_and_pooler_choice_is_logged_and_overridable(tmp_path):
    """--task embed is --runner pooling --convert embed; --override-pooler-config changes the pooler."""
    log = tmp_path / "vllmd.log"
    s = Server("--task", "embed", "--override-pooler-config", '{"pooling_type": "MEAN", "normalize": false}',
               env={"VLLM_LOGGING_LEVEL": "INFO"}, stderr=log)
    try:
        text = log.read_text()
        assert "runner: pooling (convert: embed)" in text
        assert "pooling_type=MEAN normalize=false" in text and "--override-pooler-config" in text
        req = urllib.request.Request(s.base + "/v1/embeddings", data=b'{"input": "hello there"}', headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            v = json.loads(r.read())["data"][0]["embedding"]
        assert abs(sum(x * x for x in v) - 1.0) > 1e-3  # not normalised
    finally:
        s.stop()
    bad = subprocess.run([str(VLLMD), "--runner", "pooling", "--override-pooler-config", '{"pooling_type": "STEP"}', "--device", "cpu"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "pooling_type STEP" in bad.stderr
