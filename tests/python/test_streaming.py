"""The OpenAI wire format over HTTP, checked against Hugging Face transformers' float32 reference
(engine/tests/fixtures/reference): server-sent events end with `data: [DONE]`, every chunk
carries the request's id and object, and streamed `n > 1`, streamed logprobs, `echo`, chat
`n > 1` and vLLM's `prompt_logprobs` give the reference's tokens and numbers.

Raw HTTP (not the openai client) where the wire format itself is the subject."""

import http.client
import json

import pytest

from conftest import API_KEY

EOS_TEXT = "<|im_end|>"
# float32 on both sides, different reduction orders (as the Rust golden tests).
TOL = 1e-3


def golden_text(ref, idx):
    return ref[idx]["greedy_text"].removesuffix(EOS_TEXT)


def post(server, path, body):
    """POSTs JSON; returns the parsed body, or for `stream` the list of SSE `data:` payloads as
    sent (strings, `[DONE]` included) after checking that every line is an SSE line."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
    conn.request("POST", path, body=json.dumps(body),
                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"})
    r = conn.getresponse()
    raw = r.read().decode()
    conn.close()
    assert r.status == 200, raw
    if not body.get("stream"):
        return json.loads(raw)
    assert r.getheader("content-type", "").startswith("text/event-stream")
    events = []
    for line in raw.split("\n"):
        if line == "":
            continue
        assert line.startswith("data: "), f"not an SSE data line: {line!r}"
        events.append(line[len("data: "):])
    return events


def chunks_of(events, object_name, id_prefix):
    """Checks the stream's framing and chunk fields; returns the JSON chunks."""
    assert events, "empty stream"
    assert events[-1] == "[DONE]", events[-3:]
    assert events.count("[DONE]") == 1
    chunks = [json.loads(e) for e in events[:-1]]
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1, f"one id per request, got {ids}"
    assert ids.pop().startswith(id_prefix)
    created = {c["created"] for c in chunks}
    assert len(created) == 1 and isinstance(next(iter(created)), int)
    for c in chunks:
        assert c["object"] == object_name, c
        assert c["model"] == "smollm2", c
    return chunks


def per_choice(chunks, field):
    """Concatenates `field(choice)` per choice index over the chunks; also returns each index's
    finish reasons."""
    text, finish = {}, {}
    for c in chunks:
        for ch in c["choices"]:
            text[ch["index"]] = text.get(ch["index"], "") + (field(ch) or "")
            if ch.get("finish_reason"):
                finish.setdefault(ch["index"], []).append(ch["finish_reason"])
    return text, finish


def check_logprob(got, want_step):
    """A sampled token's logprob and its top alternatives against one reference step."""
    ref = dict(want_step["top5"])
    assert abs(got - want_step["logprob"]) < TOL, (got, want_step)
    return ref


def test_completion_stream_n2_is_framed_and_matches_the_reference(server, reference):
    r = reference[0]
    events = post(server, "/v1/completions", {"model": "smollm2", "prompt": r["prompt"], "max_tokens": 32,
                                              "temperature": 0, "n": 2, "stream": True})
    chunks = chunks_of(events, "text_completion", "cmpl-")
    text, finish = per_choice(chunks, lambda ch: ch["text"])
    assert text == {0: golden_text(reference, 0), 1: golden_text(reference, 0)}
    assert finish == {0: ["length"], 1: ["length"]}


def test_chat_stream_n2_is_framed_and_matches_the_reference(server, reference):
    r = reference[7]
    events = post(server, "/v1/chat/completions", {"model": "smollm2", "messages": r["messages"], "max_tokens": 32,
                                                   "temperature": 0, "n": 2, "stream": True,
                                                   "stream_options": {"include_usage": True}})
    chunks = chunks_of(events, "chat.completion.chunk", "chatcmpl-")
    text, finish = per_choice(chunks, lambda ch: ch["delta"].get("content"))
    assert text == {0: golden_text(reference, 7), 1: golden_text(reference, 7)}
    assert finish == {0: ["stop"], 1: ["stop"]}
    roles = {ch["index"]: ch["delta"]["role"] for c in chunks for ch in c["choices"] if ch["delta"].get("role")}
    assert roles == {0: "assistant", 1: "assistant"}
    usage = chunks[-1]
    assert usage["choices"] == []
    assert usage["usage"]["prompt_tokens"] == len(r["prompt_token_ids"])
    assert usage["usage"]["completion_tokens"] == 2 * len(r["greedy_token_ids"])


def test_chat_n3_unstreamed_matches_the_reference(server, reference):
    r = reference[9]
    out = post(server, "/v1/chat/completions", {"model": "smollm2", "messages": r["messages"], "max_tokens": 32,
                                                "temperature": 0, "n": 3})
    assert out["object"] == "chat.completion" and out["id"].startswith("chatcmpl-")
    assert [c["index"] for c in out["choices"]] == [0, 1, 2]
    for c in out["choices"]:
        assert c["message"]["content"] == golden_text(reference, 9)
        assert c["finish_reason"] == "stop"
    assert out["usage"]["completion_tokens"] == 3 * len(r["greedy_token_ids"])


def test_streamed_completion_logprobs_match_the_reference(server, reference):
    r = reference[3]
    events = post(server, "/v1/completions", {"model": "smollm2", "prompt": r["prompt"], "max_tokens": 12, "temperature": 0,
                                              "logprobs": 3, "stream": True, "return_tokens_as_token_ids": True})
    chunks = chunks_of(events, "text_completion", "cmpl-")
    tokens, lps, tops = [], [], []
    for c in chunks:
        for ch in c["choices"]:
            if ch["logprobs"]:
                tokens += ch["logprobs"]["tokens"]
                lps += ch["logprobs"]["token_logprobs"]
                tops += ch["logprobs"]["top_logprobs"]
    assert tokens == [f"token_id:{t}" for t in r["greedy_token_ids"][:12]]
    assert len(lps) == len(tops) == 12
    for got, top, want in zip(lps, tops, r["greedy_top5"]):
        ref = check_logprob(got, want)
        assert len(top) == 3
        for tok, v in top.items():
            tid = int(tok.removeprefix("token_id:"))
            assert tid in ref and abs(v - ref[tid]) < TOL, (top, want)


def test_streamed_chat_logprobs_match_the_reference(server, reference):
    r = reference[7]
    events = post(server, "/v1/chat/completions", {"model": "smollm2", "messages": r["messages"], "max_tokens": 32,
                                                   "temperature": 0, "logprobs": True, "top_logprobs": 2, "stream": True})
    chunks = chunks_of(events, "chat.completion.chunk", "chatcmpl-")
    entries = [e for c in chunks for ch in c["choices"] if ch.get("logprobs") for e in ch["logprobs"]["content"]]
    # Every generated token, the final <|im_end|> included, has its entry.
    assert len(entries) == len(r["greedy_token_ids"])
    for e, want in zip(entries, r["greedy_top5"]):
        check_logprob(e["logprob"], want)
        assert len(e["top_logprobs"]) == 2
        assert abs(e["top_logprobs"][0]["logprob"] - want["top5"][0][1]) < TOL


def test_echo_returns_the_prompt_and_its_logprobs(server, reference):
    r = reference[0]
    out = post(server, "/v1/completions", {"model": "smollm2", "prompt": r["prompt"], "max_tokens": 32, "temperature": 0,
                                           "echo": True, "logprobs": 1, "return_tokens_as_token_ids": True})
    ch = out["choices"][0]
    assert ch["text"] == r["prompt"] + golden_text(reference, 0)
    lp = ch["logprobs"]
    # vLLM: with echo, the logprobs cover the prompt tokens (the first has none) and then the
    # generated ones.
    ids = r["prompt_token_ids"] + r["greedy_token_ids"]
    assert lp["tokens"] == [f"token_id:{t}" for t in ids]
    assert lp["token_logprobs"][0] is None
    for entry in r["prompt_logprobs_top5"]:
        assert abs(lp["token_logprobs"][entry["i"]] - entry["logprob"]) < TOL, entry["i"]
    n = len(r["prompt_token_ids"])
    for s, want in enumerate(r["greedy_top5"]):
        check_logprob(lp["token_logprobs"][n + s], want)
    # vLLM's offsets add up the token strings' lengths, over the prompt and the answer alike.
    assert lp["text_offset"] == [sum(len(t) for t in lp["tokens"][:k]) for k in range(len(lp["tokens"]))]

    events = post(server, "/v1/completions", {"model": "smollm2", "prompt": r["prompt"], "max_tokens": 32, "temperature": 0,
                                              "echo": True, "stream": True})
    text, _ = per_choice(chunks_of(events, "text_completion", "cmpl-"), lambda ch: ch["text"])
    assert text == {0: r["prompt"] + golden_text(reference, 0)}


def check_prompt_logprobs(got, ref, k):
    """vLLM's `prompt_logprobs`: None for position 0, then {token id: {logprob, rank,
    decoded_token}} holding the prompt token and the k best."""
    assert len(got) == len(ref["prompt_token_ids"])
    assert got[0] is None
    for entry in ref["prompt_logprobs_top5"]:
        pos = got[entry["i"]]
        tok = pos[str(entry["token_id"])]
        assert abs(tok["logprob"] - entry["logprob"]) < TOL, entry["i"]
        assert tok["rank"] == entry["rank"], entry["i"]
        for rank, (tid, v) in enumerate(entry["top5"][:k], start=1):
            alt = pos[str(tid)]
            assert abs(alt["logprob"] - v) < TOL, (entry["i"], tid)
            if tid != entry["token_id"]:
                assert alt["rank"] == rank, (entry["i"], tid)


@pytest.mark.parametrize("k", [0, 5])
def test_completion_prompt_logprobs_match_the_reference(server, reference, k):
    r = reference[3]
    out = post(server, "/v1/completions", {"model": "smollm2", "prompt": r["prompt"], "max_tokens": 1, "temperature": 0,
                                           "prompt_logprobs": k})
    check_prompt_logprobs(out["choices"][0]["prompt_logprobs"], r, k)


def test_chat_prompt_logprobs_match_the_reference(server, reference):
    r = reference[7]
    out = post(server, "/v1/chat/completions", {"model": "smollm2", "messages": r["messages"], "max_tokens": 1,
                                                "temperature": 0, "prompt_logprobs": 2})
    check_prompt_logprobs(out["prompt_logprobs"], r, 2)
