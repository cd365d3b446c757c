"""Per-request caps that protect the engine (400 in the OpenAI error format, naming the field)
and the optional bound on waiting requests (503 with Retry-After), through the official client."""

import concurrent.futures

import openai
import pytest

from conftest import Server


@pytest.fixture(scope="module")
def c():
    s = Server("--max-num-seqs", "1", env={"VLLM_RS_MAX_WAITING_REQUESTS": "1"})
    yield openai.OpenAI(base_url=s.base + "/v1", api_key="EMPTY", max_retries=0, timeout=120)
    s.stop()


@pytest.mark.parametrize("fields,param", [
    ({"stop": [f"s{i}" for i in range(129)]}, "stop"),
    ({"stop": ["x" * 1025]}, "stop"),
    ({"logit_bias": {str(t): 1 for t in range(1025)}}, "logit_bias"),
    ({"stop_token_ids": [1] * 1025}, "stop_token_ids"),
    ({"logprobs": 21}, "logprobs"),
    ({"max_tokens": 4096}, "max_tokens"),
    ({"n": 129, "temperature": 1}, "n"),
])
def test_caps_answer_400_naming_the_field(c, fields, param):
    extra = {k: v for k, v in fields.items() if k not in ("stop", "logit_bias", "logprobs", "max_tokens", "n", "temperature")}
    known = {k: v for k, v in fields.items() if k not in extra}
    with pytest.raises(openai.BadRequestError) as e:
        c.completions.create(model="", prompt="Hello", **({"max_tokens": 4} | known), extra_body=extra)
    err = e.value.body
    assert err["param"] == param, err
    assert isinstance(err["message"], str) and err["type"] == "BadRequestError"


def test_chat_top_logprobs_follow_max_logprobs(c):
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="", messages=[{"role": "user", "content": "hi"}], logprobs=True, top_logprobs=21, max_tokens=2)
    assert e.value.body["param"] in ("logprobs", "top_logprobs")
    r = c.chat.completions.create(model="", messages=[{"role": "user", "content": "hi"}], logprobs=True, top_logprobs=20, max_tokens=2)
    assert len(r.choices[0].logprobs.content[0].top_logprobs) == 20


def test_caps_are_inclusive(c):
    r = c.completions.create(model="", prompt="Hello", max_tokens=2, stop=[f"s{i}" for i in range(128)],
                             logit_bias={str(t): 1 for t in range(1024)})
    assert r.choices[0].finish_reason in ("stop", "length")


def test_waiting_bound_answers_503_with_retry_after(c):
    """One slot (--max-num-seqs 1) and one waiting place: of eight simultaneous requests, those
    that find the queue full are refused at once; the others are answered."""
    def one(i):
        try:
            r = c.completions.create(model="", prompt=f"Story {i}:", max_tokens=24, extra_body={"ignore_eos": True})
            return ("ok", r.choices[0].finish_reason)
        except openai.APIStatusError as e:
            return (e.status_code, e.response.headers.get("retry-after"), e.body)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    refused = [r for r in results if r[0] == 503]
    answered = [r for r in results if r[0] == "ok"]
    assert len(refused) + len(answered) == 8, results
    assert answered and all(r[1] == "length" for r in answered), results
    assert refused, f"no request was refused with the queue bound at 1: {results}"
    for _, retry_after, body in refused:
        assert retry_after is not None and int(retry_after) >= 1
        assert "overloaded" in body["message"] and body["type"] == "ServiceUnavailableError"
    # The bound is on waiting requests only: once the queue drains, requests are served again.
    r = c.completions.create(model="", prompt="Again", max_tokens=2)
    assert r.choices[0].finish_reason in ("stop", "length")
