"""A corpus of bad requests: each gets its documented status and an OpenAI-shaped error body,
and the server keeps serving afterwards."""

import http.client
import io
import json
import socket

import pytest

from conftest import API_KEY


def post(server, path, body: bytes, key=API_KEY, content_type="application/json"):
    """Sends the request on a raw socket: for an oversized body the server answers 413 and
    closes before reading it all, which http.client reports as a broken pipe."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
    if key:
        head += f"Authorization: Bearer {key}\r\n"
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    try:
        sock.sendall(head.encode() + b"\r\n" + body)
    except (BrokenPipeError, ConnectionResetError):
        pass
    raw = b""
    try:
        while chunk := sock.recv(65536):
            raw += chunk
    except ConnectionResetError:
        pass
    sock.close()
    resp = http.client.HTTPResponse(FakeSocket(raw))
    resp.begin()
    return resp.status, resp.read()


class FakeSocket:
    """Lets http.client parse a response already read from a socket."""

    def __init__(self, data: bytes):
        self._file = io.BytesIO(data)

    def makefile(self, *_args, **_kwargs):
        return self._file


CASES = [
    ("malformed json", "/v1/completions", b'{"prompt": "hi",', 400, None),
    ("not an object", "/v1/completions", b'[1, 2, 3]', 400, None),
    ("invalid utf-8", "/v1/completions", b'{"prompt": "\xff\xfe"}', 400, None),
    ("prompt wrong type", "/v1/completions", json.dumps({"prompt": 5}).encode(), 400, None),
    ("missing prompt", "/v1/completions", json.dumps({"max_tokens": 5}).encode(), 400, None),
    ("negative max_tokens", "/v1/completions", json.dumps({"prompt": "hi", "max_tokens": -3}).encode(), 400, None),
    ("zero max_tokens", "/v1/completions", json.dumps({"prompt": "hi", "max_tokens": 0}).encode(), 400, "max_tokens"),
    ("huge max_tokens", "/v1/completions", json.dumps({"prompt": "hi", "max_tokens": 10**12}).encode(), 400, "max_tokens"),
    ("top_p out of range", "/v1/completions", json.dumps({"prompt": "hi", "top_p": 1.5}).encode(), 400, "top_p"),
    ("n zero", "/v1/completions", json.dumps({"prompt": "hi", "n": 0}).encode(), 400, "n"),
    ("huge n", "/v1/completions", json.dumps({"prompt": "hi", "n": 10**6, "max_tokens": 1}).encode(), 400, "n"),
    ("temperature string", "/v1/completions", json.dumps({"prompt": "hi", "temperature": "hot"}).encode(), 400, "temperature"),
    ("token id out of vocab", "/v1/completions", json.dumps({"prompt": [10**9]}).encode(), 400, "prompt"),
    ("empty prompt", "/v1/completions", json.dumps({"prompt": ""}).encode(), 400, None),
    ("empty messages", "/v1/chat/completions", json.dumps({"messages": []}).encode(), 400, "messages"),
    ("bad role", "/v1/chat/completions", json.dumps({"messages": [{"role": "wizard", "content": "x"}]}).encode(), 400, "messages"),
    ("messages wrong type", "/v1/chat/completions", json.dumps({"messages": "hello"}).encode(), 400, None),
    ("logprobs too many", "/v1/completions", json.dumps({"prompt": "hi", "logprobs": 1000}).encode(), 400, "logprobs"),
    ("unknown model", "/v1/completions", json.dumps({"prompt": "hi", "model": "nope"}).encode(), 404, None),
    ("10 MB body", "/v1/completions", b'{"prompt": "' + b"a" * (10 << 20) + b'"}', 413, None),
]


@pytest.mark.parametrize("name,path,body,status,param", CASES, ids=[c[0] for c in CASES])
def test_bad_request(server, name, path, body, status, param):
    got, data = post(server, path, body)
    assert got == status, data[:300]
    err = json.loads(data)["error"]
    assert err["code"] == status and err["message"] and err["type"]
    if param:
        assert err["param"] == param, err


def test_missing_key_is_401(server):
    got, data = post(server, "/v1/completions", json.dumps({"prompt": "hi"}).encode(), key=None)
    assert got == 401
    assert json.loads(data)["error"]["code"] == 401


def test_unknown_fields_are_ignored_like_vllm(server):
    got, data = post(server, "/v1/completions", json.dumps({"prompt": "hi", "max_tokens": 2, "frobnicate": True}).encode())
    assert got == 200, data


def test_server_still_serves_after_the_corpus(server):
    got, data = post(server, "/v1/completions", json.dumps({"prompt": "The capital of Japan is", "max_tokens": 3, "temperature": 0}).encode())
    assert got == 200
    assert json.loads(data)["choices"][0]["text"] == " Tokyo.\n"
