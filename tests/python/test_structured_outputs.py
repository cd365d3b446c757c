"""Structured outputs, tool calls and reasoning through a real vllmd, checked with the official
`openai` client, pydantic and the `jsonschema` package (references nobody here wrote)."""

import json
import re
from concurrent.futures import ThreadPoolExecutor

import jsonschema
import openai
import pydantic
import pytest

from conftest import Server

MAX_TOKENS = 400

# Twenty schemas of varied shape. Strings and arrays are bounded and objects closed so a small
# model must finish well inside MAX_TOKENS: a cut-off answer would be invalid JSON.
S = {"type": "string", "maxLength": 12}
SCHEMAS = [
    {"type": "object", "properties": {"name": S, "age": {"type": "integer", "minimum": 0, "maximum": 120}}, "required": ["name", "age"], "additionalProperties": False},
    {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"], "additionalProperties": False},
    {"type": "object", "properties": {"color": {"enum": ["red", "green", "blue"]}}, "required": ["color"], "additionalProperties": False},
    {"type": "object", "properties": {"tags": {"type": "array", "items": S, "minItems": 2, "maxItems": 3}}, "required": ["tags"], "additionalProperties": False},
    {"type": "object", "properties": {"price": {"type": "number", "minimum": 1.5, "maximum": 99.5}}, "required": ["price"], "additionalProperties": False},
    {"type": "object", "properties": {"zip": {"type": "string", "pattern": "^[0-9]{5}$"}}, "required": ["zip"], "additionalProperties": False},
    {"type": "object", "properties": {"point": {"type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}}, "required": ["x", "y"], "additionalProperties": False}}, "required": ["point"], "additionalProperties": False},
    {"$defs": {"item": {"type": "object", "properties": {"id": {"type": "integer", "minimum": 1, "maximum": 9}}, "required": ["id"], "additionalProperties": False}},
     "type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/item"}, "minItems": 1, "maxItems": 2}}, "required": ["items"], "additionalProperties": False},
    {"type": "object", "properties": {"v": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 9}, {"type": "string", "maxLength": 3}]}}, "required": ["v"], "additionalProperties": False},
    {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 100}, "minItems": 1, "maxItems": 4},
    {"type": "integer", "minimum": 10, "maximum": 20},
    {"type": "string", "enum": ["yes", "no", "maybe"]},
    {"type": "object", "properties": {"a": {"type": "null"}, "b": {"const": "fixed"}}, "required": ["a", "b"], "additionalProperties": False},
    {"type": "object", "properties": {"first": S, "last": S, "middle": S}, "required": ["first", "last"], "additionalProperties": False},
    {"type": "object", "properties": {"matrix": {"type": "array", "items": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 9}, "minItems": 2, "maxItems": 2}, "minItems": 2, "maxItems": 2}}, "required": ["matrix"], "additionalProperties": False},
    {"type": "object", "properties": {"email": {"type": "string", "pattern": "^[a-z]{1,8}@[a-z]{1,8}\\.com$"}}, "required": ["email"], "additionalProperties": False},
    {"type": "object", "properties": {"kind": {"type": "string", "enum": ["cat", "dog"]}, "legs": {"type": "integer", "enum": [2, 4]}}, "required": ["kind", "legs"], "additionalProperties": False},
    {"type": "object", "properties": {"flags": {"type": "array", "items": {"type": "boolean"}, "minItems": 3, "maxItems": 3}}, "required": ["flags"], "additionalProperties": False},
    {"type": "object", "properties": {"ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}}, "required": ["ratio"], "additionalProperties": False},
    {"type": "object", "properties": {"user": {"type": "object", "properties": {"id": {"type": "integer", "minimum": 1, "maximum": 999}, "role": {"enum": ["admin", "guest"]}}, "required": ["id", "role"], "additionalProperties": False}, "active": {"type": "boolean"}}, "required": ["user", "active"], "additionalProperties": False},
]
assert len(SCHEMAS) == 20

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}, "unit": {"enum": ["c", "f"]}}, "required": ["city", "unit"], "additionalProperties": False},
    },
}
TIME = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"zone": {"type": "string", "maxLength": 10}}, "required": ["zone"], "additionalProperties": False}},
}


@pytest.fixture(scope="module")
def compact():
    """Compact JSON only (--guided-decoding-disable-any-whitespace) and auto tool choice."""
    s = Server("--guided-decoding-disable-any-whitespace", "--enable-auto-tool-choice", "--tool-call-parser", "hermes")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def c(compact):
    return openai.OpenAI(base_url=compact.base + "/v1", api_key="x", max_retries=0, timeout=300)


def ask(c, content, **kw):
    kw.setdefault("max_tokens", MAX_TOKENS)
    return c.chat.completions.create(model=c.models.list().data[0].id, messages=[{"role": "user", "content": content}], **kw)


@pytest.mark.parametrize("sampled", [False, True], ids=["greedy", "sampled"])
def test_twenty_json_schemas_validate(c, sampled):
    params = {"temperature": 0.8, "seed": 7} if sampled else {"temperature": 0.0}

    def one(i):
        schema = SCHEMAS[i]
        r = ask(c, "Answer with JSON.", response_format={"type": "json_schema", "json_schema": {"name": f"s{i}", "schema": schema, "strict": True}}, **params)
        ch = r.choices[0]
        assert ch.finish_reason == "stop", (i, ch.message.content)
        jsonschema.validate(json.loads(ch.message.content), schema)
        return ch.message.content

    # Sampling may extend a JSON number's digits without end (JSON Schema cannot bound
    # precision), so the sampled run leaves out the two schemas with non-integer numbers.
    which = [i for i, s in enumerate(SCHEMAS) if not (sampled and '"number"' in json.dumps(s))]
    with ThreadPoolExecutor(8) as ex:
        outs = list(ex.map(one, which))
    # Compact JSON: no whitespace between tokens (strings may hold spaces).
    for o in outs:
        assert not re.search(r'[,:\[{]\s', re.sub(r'"(\\.|[^"\\])*"', '""', o)), o


def test_parse_with_a_pydantic_model(c):
    class Person(pydantic.BaseModel):
        name: str = pydantic.Field(max_length=12)
        age: int = pydantic.Field(ge=0, le=120)

    parse = getattr(c.chat.completions, "parse", None) or c.beta.chat.completions.parse
    r = parse(model=c.models.list().data[0].id, messages=[{"role": "user", "content": "Invent a person."}], response_format=Person, max_tokens=MAX_TOKENS, temperature=0)
    p = r.choices[0].message.parsed
    assert isinstance(p, Person) and 0 <= p.age <= 120


def test_json_object_regex_choice_and_grammars(c):
    r = ask(c, "A JSON object please.", response_format={"type": "json_object"}, temperature=0, max_completion_tokens=200)
    if r.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(r.choices[0].message.content), dict)
    else:
        assert r.choices[0].message.content.startswith("{")
    r = ask(c, "A phone number.", extra_body={"guided_regex": r"[0-9]{3}-[0-9]{4}"}, temperature=0.8, seed=1)
    assert re.fullmatch(r"[0-9]{3}-[0-9]{4}", r.choices[0].message.content)
    r = ask(c, "A date.", extra_body={"structured_outputs": {"regex": r"20[0-9]{2}-(0[1-9]|1[0-2])-[0-2][0-9]"}}, temperature=0)
    assert re.fullmatch(r"20[0-9]{2}-(0[1-9]|1[0-2])-[0-2][0-9]", r.choices[0].message.content)
    for body in ({"guided_choice": ["positive", "negative"]}, {"structured_outputs": {"choice": ["positive", "negative"]}}):
        r = ask(c, "Sentiment of: I love it.", extra_body=body, temperature=0)
        assert r.choices[0].message.content in ("positive", "negative")
    # The GBNF example of vLLM's structured-outputs documentation, and the same in Lark.
    gbnf = '''root ::= select_statement
select_statement ::= "SELECT " column " from " table " where " condition
column ::= "col_1 " | "col_2 "
table ::= "table_1 " | "table_2 "
condition ::= column "= " number
number ::= "1 " | "2 "'''
    lark = 'start: "SELECT " col " from " tbl\ncol: "col_1" | "col_2"\ntbl: /table_[0-9]/'
    sql = re.compile(r"SELECT col_[12]  from table_[12]  where col_[12] = [12] ")
    for body, pattern in (({"guided_grammar": gbnf}, sql), ({"structured_outputs": {"grammar": gbnf}}, sql),
                          ({"structured_outputs": {"grammar": lark}}, re.compile(r"SELECT col_[12] from table_[0-9]"))):
        r = ask(c, "Write SQL.", extra_body=body, temperature=0.7, seed=3)
        assert pattern.fullmatch(r.choices[0].message.content), r.choices[0].message.content


def test_completions_endpoint_takes_the_same_fields(c):
    model = c.models.list().data[0].id
    r = c.completions.create(model=model, prompt="The capital of France is", max_tokens=40, temperature=0, extra_body={"guided_json": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 10}}, "required": ["city"], "additionalProperties": False}})
    assert set(json.loads(r.choices[0].text)) == {"city"}
    r = c.completions.create(model=model, prompt="Pick:", max_tokens=5, temperature=0, n=3, extra_body={"guided_choice": ["alpha", "beta"]})
    assert all(ch.text in ("alpha", "beta") for ch in r.choices)


def test_bad_constraints_are_400_and_the_server_keeps_serving(c):
    bad = [
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}}},
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#/$defs/missing"}}}},
        {"guided_regex": "(unclosed"},
        {"guided_grammar": "root ::= \"a"},
        {"structured_outputs": {"grammar": "start: undefined_rule"}},
        {"guided_choice": []},
        {"guided_json": {"type": "object"}, "guided_regex": "a"},
        {"guided_regex": "a", "guided_decoding_backend": "xgrammar"},
        {"response_format": {"type": "yaml"}},
    ]
    for body in bad:
        with pytest.raises(openai.BadRequestError):
            ask(c, "x", extra_body=body, max_tokens=5)
    assert ask(c, "Say hi.", max_tokens=3).choices[0].message.content


def calls_of(message):
    return [(t.function.name, json.loads(t.function.arguments)) for t in message.tool_calls]


def streamed(c, **kw):
    """Runs a streamed chat request; returns (content, reasoning, calls, finish_reason)."""
    stream = ask(c, stream=True, **kw)
    content, reasoning, calls, finish = "", "", {}, None
    for chunk in stream:
        for ch in chunk.choices:
            d = ch.delta
            content += d.content or ""
            reasoning += getattr(d, "reasoning_content", None) or (d.model_extra or {}).get("reasoning_content") or ""
            for t in d.tool_calls or []:
                slot = calls.setdefault(t.index, {"id": None, "name": None, "arguments": ""})
                if t.id:
                    assert slot["id"] is None, "one id per call"
                    slot["id"] = t.id
                if t.function and t.function.name:
                    slot["name"] = t.function.name
                if t.function and t.function.arguments:
                    slot["arguments"] += t.function.arguments
            finish = ch.finish_reason or finish
    for slot in calls.values():
        assert slot["id"] and slot["name"], "id and name come first"
    return content, reasoning, [(s["name"], json.loads(s["arguments"])) for _, s in sorted(calls.items())], finish


@pytest.mark.parametrize("choice", ["required", "named"])
def test_forced_tool_calls_streamed_and_not(c, choice):
    tool_choice = "required" if choice == "required" else {"type": "function", "function": {"name": "get_weather"}}
    kw = dict(content="What's the weather in Paris, in celsius?", tools=[WEATHER, TIME], tool_choice=tool_choice, temperature=0)
    r = ask(c, **kw)
    msg = r.choices[0].message
    calls = calls_of(msg)
    assert calls and all(n in ("get_weather", "get_time") for n, _ in calls)
    for name, args in calls:
        jsonschema.validate(args, (WEATHER if name == "get_weather" else TIME)["function"]["parameters"])
    if choice == "named":
        assert calls[0][0] == "get_weather" and r.choices[0].finish_reason == "stop"
    else:
        assert r.choices[0].finish_reason == "tool_calls"
    assert all(t.id.startswith("chatcmpl-tool-") and t.type == "function" for t in msg.tool_calls)
    _, _, s_calls, s_finish = streamed(c, **kw)
    assert s_calls == calls and s_finish == r.choices[0].finish_reason


def test_auto_tool_choice_parses_the_models_hermes_calls(c):
    # The model's own syntax, forced by a regex so the small model writes a call for sure.
    forced = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "(Paris|Oslo)", "unit": "c"}}\n</tool_call>'
    rx = re.escape(forced).replace(re.escape("(Paris|Oslo)"), "(Paris|Oslo)")
    kw = dict(content="Weather in Paris?", tools=[WEATHER], tool_choice="auto", temperature=0, extra_body={"guided_regex": rx})
    r = ask(c, **kw)
    msg = r.choices[0].message
    assert calls_of(msg) in ([("get_weather", {"city": "Paris", "unit": "c"})], [("get_weather", {"city": "Oslo", "unit": "c"})])
    assert not msg.content and r.choices[0].finish_reason == "tool_calls"
    content, _, s_calls, finish = streamed(c, **kw)
    assert s_calls == calls_of(msg) and finish == "tool_calls" and not content.strip()
    # Without a call, the text is the answer.
    r = ask(c, "Say hello.", tools=[WEATHER], tool_choice="auto", temperature=0, extra_body={"guided_regex": "Hello there"})
    assert r.choices[0].message.content == "Hello there" and not r.choices[0].message.tool_calls
    assert r.choices[0].finish_reason == "stop"


@pytest.fixture(scope="module")
def thinking():
    s = Server("--reasoning-parser", "deepseek_r1")
    yield openai.OpenAI(base_url=s.base + "/v1", api_key="x", max_retries=0, timeout=300)
    s.stop()


def test_reasoning_is_split_from_content(thinking):
    # SmolLM2 has no <think> token, so the constraint applies from the first token: a regex
    # makes it "think" in DeepSeek-R1's format.
    c = thinking
    kw = dict(content="Is 7 prime?", temperature=0, extra_body={"guided_regex": "<think>(Seven|7) is prime</think>Yes"})
    r = ask(c, **kw)
    assert r.choices[0].finish_reason == "stop"
    m = r.choices[0].message
    reasoning = (m.model_extra or {}).get("reasoning_content")
    assert reasoning in ("Seven is prime", "7 is prime") and m.content == "Yes"
    content, s_reasoning, _, _ = streamed(c, **kw)
    assert (content, s_reasoning) == ("Yes", reasoning)
    r = ask(c, kw["content"], temperature=0, extra_body={**kw["extra_body"], "include_reasoning": False})
    assert (r.choices[0].message.model_extra or {}).get("reasoning_content") is None and r.choices[0].message.content == "Yes"


def test_tool_call_history_renders(client):
    # An assistant turn with tool_calls and no content, then the tool's answer (SmolLM2's
    # template concatenates `content`, which failed on null before).
    model = client.models.list().data[0].id
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\", \"unit\": \"c\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
    ]
    r = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER], tool_choice="none", max_tokens=8, temperature=0)
    assert r.choices[0].message.content is not None and r.usage.prompt_tokens > 20
    with pytest.raises(openai.BadRequestError):
        bad = [messages[0], {**messages[1], "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]
        client.chat.completions.create(model=model, messages=bad, max_tokens=4)


def test_auto_needs_the_server_flags(client):
    model = client.models.list().data[0].id
    with pytest.raises(openai.BadRequestError, match="enable-auto-tool-choice"):
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}], tools=[WEATHER], max_tokens=4)


def test_run_batch_takes_the_same_fields(tmp_path):
    from conftest import ROOT
    import subprocess

    schema = SCHEMAS[0]
    lines = [
        {"custom_id": "schema", "method": "POST", "url": "/v1/chat/completions",
         "body": {"messages": [{"role": "user", "content": "A person."}], "max_tokens": MAX_TOKENS, "temperature": 0,
                  "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": schema}}}},
        {"custom_id": "tool", "method": "POST", "url": "/v1/chat/completions",
         "body": {"messages": [{"role": "user", "content": "Weather in Oslo?"}], "max_tokens": MAX_TOKENS, "temperature": 0,
                  "tools": [WEATHER], "tool_choice": "required"}},
        {"custom_id": "choice", "method": "POST", "url": "/v1/completions",
         "body": {"prompt": "Yes or no:", "max_tokens": 4, "temperature": 0, "guided_choice": ["yes", "no"]}},
        {"custom_id": "bad", "method": "POST", "url": "/v1/completions",
         "body": {"prompt": "x", "max_tokens": 4, "guided_regex": "(unclosed"}},
    ]
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("\n".join(json.dumps(l) for l in lines) + "\n")
    subprocess.run([str(ROOT / "target" / "release" / "vllm"), "run-batch", "-i", str(inp), "-o", str(out),
                    "--device", "cpu", "--max-model-len", "2048"], check=True, capture_output=True, timeout=600)
    got = {r["custom_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    jsonschema.validate(json.loads(got["schema"]["response"]["body"]["choices"][0]["message"]["content"]), schema)
    msg = got["tool"]["response"]["body"]["choices"][0]["message"]
    assert msg["tool_calls"][0]["function"]["name"] == "get_weather"
    jsonschema.validate(json.loads(msg["tool_calls"][0]["function"]["arguments"]), WEATHER["function"]["parameters"])
    assert got["choice"]["response"]["body"]["choices"][0]["text"] in ("yes", "no")
    assert got["bad"]["response"]["status_code"] == 400
