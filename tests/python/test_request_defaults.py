"""vLLM's request defaults and fields, driven with the official openai client: /v1/completions
stops at 16 tokens when max_tokens is not given; fields vllm-rs cannot honour yet (best_of above
n, beam search, prompt embeddings, structured output, automatic tool choice) are refused with a
400 naming the field, never silently dropped; fields nobody knows are ignored."""

import openai
import pytest

from conftest import Server

MODEL = "smollm2"


def test_completions_default_to_16_tokens(client):
    out = client.completions.create(model=MODEL, prompt="The capital of France is", temperature=0, extra_body={"ignore_eos": True})
    assert out.usage.completion_tokens == 16
    assert out.choices[0].finish_reason == "length"


def test_an_explicit_max_tokens_still_wins(client):
    out = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=20, temperature=0, extra_body={"ignore_eos": True})
    assert out.usage.completion_tokens == 20


@pytest.mark.parametrize("kwargs, param", [
    ({"best_of": 2}, "best_of"),
    ({"extra_body": {"use_beam_search": True}}, "use_beam_search"),
    ({"extra_body": {"prompt_embeds": "AAAA"}}, "prompt_embeds"),
    ({"extra_body": {"structural_tag": "{}"}}, "structural_tag"),
])
def test_completion_fields_that_cannot_be_honoured_are_refused(client, kwargs, param):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=MODEL, prompt="Hi", max_tokens=2, **kwargs)
    assert e.value.status_code == 400
    assert e.value.body["param"] == param, e.value.body
    assert "not supported yet" in e.value.body["message"]


def test_harmless_values_and_unknown_fields_pass(client):
    out = client.completions.create(model=MODEL, prompt="Hi", max_tokens=2, n=2, best_of=2, user="someone",
                                    extra_body={"use_beam_search": False, "length_penalty": 1.0, "no_such_field": {"x": 1}})
    assert len(out.choices) == 2


def test_chat_fields_that_cannot_be_honoured_are_refused(client):
    messages = [{"role": "user", "content": "Hi"}]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    for kwargs, param in [
        # `auto` needs --enable-auto-tool-choice and --tool-call-parser, as in vLLM.
        ({"tools": tools, "tool_choice": "auto"}, "tool_choice"),
        ({"tools": tools}, "tool_choice"),
        ({"response_format": {"type": "json_object"}, "tools": tools, "tool_choice": "required"}, "tool_choice"),
        ({"extra_body": {"use_beam_search": True}}, "use_beam_search"),
    ]:
        with pytest.raises(openai.BadRequestError) as e:
            client.chat.completions.create(model=MODEL, messages=messages, max_tokens=2, **kwargs)
        assert e.value.body["param"] == param, (kwargs, e.value.body)
    ok = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=2, tools=tools, tool_choice="none",
                                        response_format={"type": "text"})
    assert ok.choices[0].message.role == "assistant"


TOOLS_TEMPLATE = "{% if tools %}TOOLS {{ tools }}\n{% endif %}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"


def test_tools_left_out_when_tool_choice_is_none(tmp_path):
    template = tmp_path / "tools.jinja"
    template.write_text(TOOLS_TEMPLATE)
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city, in a long description",
                                               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    messages = [{"role": "user", "content": "Hi"}]

    def prompt_tokens(server, **kwargs):
        c = openai.OpenAI(base_url=server.base + "/v1", api_key="none", max_retries=0, timeout=60)
        name = c.models.list().data[0].id
        return c.chat.completions.create(model=name, messages=messages, max_tokens=1, **kwargs).usage.prompt_tokens

    for flag, excluded in ((), False), (("--exclude-tools-when-tool-choice-none",), True):
        s = Server("--chat-template", str(template), *flag)
        try:
            bare = prompt_tokens(s)
            with_none = prompt_tokens(s, tools=tools, tool_choice="none")
            assert (with_none == bare) == excluded, (flag, bare, with_none)
        finally:
            s.stop()
