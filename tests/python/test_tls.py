"""vllmd over TLS (--ssl-keyfile/--ssl-certfile/--ssl-ca-certs/--ssl-cert-reqs): the official
`openai` client and `vllm chat` over https, a plain-HTTP client on the TLS port, client
certificates. Certificates are made at test time with the `openssl` command."""

import http.client
import json
import os
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, Server

VLLM = ROOT / "target" / "release" / "vllm"
MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"


def client_context(certs: Path, cert: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    if cert is not None:
        ctx.load_cert_chain(str(cert.with_suffix(".pem")), str(cert.with_suffix(".key")))
    return ctx


@pytest.fixture(scope="module")
def tls_server(certs):
    s = Server("--ssl-keyfile", str(certs / "server.key"), "--ssl-certfile", str(certs / "server.pem"), ssl_context=client_context(certs))
    yield s
    s.stop()


def chat_body(question: str) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": question}], "temperature": 0, "max_tokens": 16}


def test_openai_client_over_https(tls_server, certs):
    import openai

    http = openai.DefaultHttpxClient(verify=client_context(certs))
    client = openai.OpenAI(base_url=tls_server.base + "/v1", api_key="EMPTY", http_client=http, max_retries=0, timeout=120)
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say hello."}], max_tokens=8, temperature=0)
    assert r.choices[0].message.content
    assert r.usage.completion_tokens > 0
    chunks = list(client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say hello."}], max_tokens=8, temperature=0, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == r.choices[0].message.content


def post(base_ctx: ssl.SSLContext, port: int, path: str, body: dict) -> tuple[int, dict]:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=base_ctx, timeout=120)
    try:
        conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()


def test_vllm_chat_over_https_with_ssl_cert_file(tls_server, certs):
    question = "What is the capital of France?"
    status, api = post(client_context(certs), tls_server.port, "/v1/chat/completions", chat_body(question))
    assert status == 200
    expected = api["choices"][0]["message"]["content"]
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env["SSL_CERT_FILE"] = str(certs / "ca.pem")
    out = subprocess.run([str(VLLM), "chat", "-q", question, "--url", tls_server.base + "/v1", "--temperature", "0", "--max-tokens", "16"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == expected + "\n"
    # Without the CA the certificate is refused in one readable line.
    env.pop("SSL_CERT_FILE")
    out = subprocess.run([str(VLLM), "chat", "-q", question, "--url", tls_server.base + "/v1"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "certificate" in out.stderr and "panicked" not in out.stderr


def test_plain_http_on_the_tls_port_fails_and_the_server_keeps_serving(tls_server, certs):
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=10) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        try:
            while chunk := s.recv(4096):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        assert not answer.startswith(b"HTTP/1.1 200")
    # A client that connects and says nothing does not block others either.
    idle = socket.create_connection(("127.0.0.1", tls_server.port), timeout=10)
    try:
        assert tls_server.get("/health") == ""
        status, _ = post(client_context(certs), tls_server.port, "/v1/completions", {"model": MODEL, "prompt": "Hi", "max_tokens": 2})
        assert status == 200
    finally:
        idle.close()


def test_client_certificates_are_required_with_cert_reqs_2(certs):
    with_cert = client_context(certs, certs / "client")
    s = Server("--ssl-keyfile", str(certs / "server.key"), "--ssl-certfile", str(certs / "server.pem"), "--ssl-ca-certs", str(certs / "ca.pem"), "--ssl-cert-reqs", "2",
               ssl_context=with_cert)
    try:
        status, body = post(with_cert, s.port, "/v1/completions", {"model": MODEL, "prompt": "Hi", "max_tokens": 2})
        assert status == 200 and body["choices"]
        for refused in (client_context(certs), client_context(certs, certs / "other" / "client")):
            with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)):
                post(refused, s.port, "/v1/completions", {"model": MODEL, "prompt": "Hi", "max_tokens": 2})
        assert post(with_cert, s.port, "/v1/completions", {"model": MODEL, "prompt": "Hi", "max_tokens": 2})[0] == 200
    finally:
        s.stop()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--ssl-certfile", "/nonexistent/cert.pem"], "--ssl-certfile /nonexistent/cert.pem"),
        (["--ssl-certfile", "{certs}/ca.key", "--ssl-keyfile", "{certs}/ca.key"], "ca.key"),
        (["--ssl-certfile", "{certs}/server.pem", "--ssl-keyfile", "{certs}/client.key"], "does not fit"),
        (["--ssl-certfile", "{certs}/server.pem", "--ssl-keyfile", "{certs}/server.key", "--ssl-cert-reqs", "2"], "--ssl-ca-certs"),
    ],
)
def test_bad_tls_files_are_one_startup_error(certs, flags, message):
    args = [f.format(certs=certs) for f in flags]
    out = subprocess.run([str(ROOT / "target" / "release" / "vllmd"), "--port", "0", *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out.stderr
    assert message in out.stderr, out.stderr
    assert "panicked" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("error: ")
