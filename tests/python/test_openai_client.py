"""The official `openai` Python client against a real vllmd serving the default model. Greedy
outputs are checked against Hugging Face transformers' greedy continuations (golden data)."""

import openai
import pytest

from conftest import API_KEY

EOS_TEXT = "<|im_end|>"


def golden_text(ref, idx):
    return ref[idx]["greedy_text"].removesuffix(EOS_TEXT)


def test_models_list(client):
    models = client.models.list()
    ids = [m.id for m in models.data]
    assert ids == ["smollm2", "smollm2-alias"]


def test_completion_matches_reference(client, reference):
    r = reference[0]
    out = client.completions.create(model="smollm2", prompt=r["prompt"], max_tokens=32, temperature=0)
    assert out.choices[0].text == golden_text(reference, 0)
    assert out.choices[0].finish_reason == "length"
    assert out.usage.prompt_tokens == len(r["prompt_token_ids"])
    assert out.usage.completion_tokens == 32


def test_completion_from_token_ids(client, reference):
    r = reference[1]
    out = client.completions.create(model="smollm2", prompt=r["prompt_token_ids"], max_tokens=32, temperature=0)
    assert out.choices[0].text == golden_text(reference, 1)


def test_streamed_completion_equals_unstreamed(client, reference):
    r = reference[3]
    chunks = list(client.completions.create(model="smollm2", prompt=r["prompt"], max_tokens=32, temperature=0, stream=True,
                                            stream_options={"include_usage": True}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == golden_text(reference, 3)
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 32


def test_chat_matches_reference(client, reference):
    r = reference[7]
    out = client.chat.completions.create(model="smollm2", messages=r["messages"], max_tokens=32, temperature=0)
    assert out.choices[0].message.role == "assistant"
    assert out.choices[0].message.content == golden_text(reference, 7)
    assert out.choices[0].finish_reason == "stop"
    assert out.usage.prompt_tokens == len(r["prompt_token_ids"])
    # The same prompt again is served from the prefix cache: every full 16-token block (the
    # default --block-size) before the last prompt token, as vLLM counts cached tokens.
    again = client.chat.completions.create(model="smollm2", messages=r["messages"], max_tokens=32, temperature=0)
    assert again.choices[0].message.content == golden_text(reference, 7)
    assert again.usage.prompt_tokens_details.cached_tokens == (len(r["prompt_token_ids"]) - 1) // 16 * 16


def test_streamed_chat(client, reference):
    r = reference[9]
    stream = client.chat.completions.create(model="smollm2", messages=r["messages"], max_tokens=32, temperature=0, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == golden_text(reference, 9)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage.completion_tokens == len(r["greedy_token_ids"])


def test_n_samples_with_seed_are_reproducible(client, reference):
    kwargs = dict(model="smollm2", prompt=reference[0]["prompt"], max_tokens=12, temperature=1.0, n=3, seed=1234)
    a = client.completions.create(**kwargs)
    b = client.completions.create(**kwargs)
    assert [c.index for c in a.choices] == [0, 1, 2]
    assert [c.text for c in a.choices] == [c.text for c in b.choices]
    assert len({c.text for c in a.choices}) > 1, "the n samples of a seeded request should differ"
    c = client.completions.create(**{**kwargs, "seed": 99})
    assert [x.text for x in c.choices] != [x.text for x in a.choices]


def test_logprobs_agree_with_reference(client, reference):
    r = reference[0]
    out = client.completions.create(model="smollm2", prompt=r["prompt"], max_tokens=4, temperature=0, logprobs=3)
    lp = out.choices[0].logprobs
    assert len(lp.tokens) == 4 and len(lp.top_logprobs[0]) == 3
    for got, want in zip(lp.token_logprobs, r["greedy_top5"]):
        assert abs(got - want["logprob"]) < 1e-3
    chat = client.chat.completions.create(model="smollm2", messages=reference[7]["messages"], max_tokens=3, temperature=0,
                                          logprobs=True, top_logprobs=2)
    entries = chat.choices[0].logprobs.content
    assert len(entries) == 3 and len(entries[0].top_logprobs) == 2
    for got, want in zip(entries, reference[7]["greedy_top5"]):
        assert abs(got.logprob - want["logprob"]) < 1e-3


def test_stop_string(client, reference):
    out = client.completions.create(model="smollm2", prompt=reference[0]["prompt"], max_tokens=32, temperature=0, stop=["curious and"])
    assert out.choices[0].text == " Aria. She was a "
    assert out.choices[0].finish_reason == "stop"


def test_bad_parameter_is_400(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="smollm2", prompt="hi", max_tokens=5, temperature=-1)
    assert "temperature" in str(e.value)


def test_prompt_too_long_is_400_with_numbers(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="smollm2", prompt="hello " * 3000, max_tokens=16)
    assert "maximum context length is 2048" in str(e.value)


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="gpt-5", prompt="hi", max_tokens=5)


def test_wrong_key_is_401(server):
    bad = openai.OpenAI(base_url=server.base + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_health_needs_no_key(server):
    assert server.get("/health") == ""
    assert '"version"' in server.get("/version")
