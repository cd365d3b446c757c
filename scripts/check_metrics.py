#!/usr/bin/env python3
"""Check a vllmd (or vLLM) /metrics text with Prometheus' own Python parser.

    check_metrics.py SOURCE [--model-name NAME] [--expect 'SAMPLE OP VALUE']...

SOURCE is a file, '-' for stdin, or an http(s) URL. The text must parse with
prometheus_client.parser; every expected family must be present with the right
type; every sample of a vllm: family must carry a model_name label (equal to
--model-name when given); every family needs HELP text; histogram buckets must be
cumulative and end in a +Inf bucket equal to _count.

--expect takes SAMPLE{LABELS}OP VALUE, e.g.
    --expect 'vllm:prompt_tokens_total=1234'
    --expect 'vllm:request_success_total{finished_reason="stop"}=3'
    --expect 'vllm:e2e_request_latency_seconds_count>=1'
SAMPLE is a sample name as exposed (counters with _total, histograms with
_bucket/_count/_sum). The listed labels must match; unlisted ones may be
anything, and all matching samples are summed. OP is one of = == >= <= > <.

Exit status: 0 when everything holds, 1 when a check fails, 2 on bad usage or
an unreadable/unparsable source.
"""

import argparse
import math
import re
import sys
import urllib.request

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # pragma: no cover - depends on the environment
    print("error: prometheus_client is not installed (pip install prometheus_client)", file=sys.stderr)
    sys.exit(2)

# (family name as the parser reports it, type). The parser drops a counter's _total.
EXPECTED_FAMILIES = [
    ("vllm:num_requests_running", "gauge"),
    ("vllm:num_requests_waiting", "gauge"),
    ("vllm:kv_cache_usage_perc", "gauge"),
    ("vllm:prefix_cache_queries", "counter"),
    ("vllm:prefix_cache_hits", "counter"),
    ("vllm:num_preemptions", "counter"),
    ("vllm:prompt_tokens", "counter"),
    ("vllm:generation_tokens", "counter"),
    ("vllm:request_success", "counter"),
    ("vllm:time_to_first_token_seconds", "histogram"),
    ("vllm:inter_token_latency_seconds", "histogram"),
    ("vllm:time_per_output_token_seconds", "histogram"),
    ("vllm:e2e_request_latency_seconds", "histogram"),
    ("vllm:request_queue_time_seconds", "histogram"),
    ("vllm:request_prefill_time_seconds", "histogram"),
    ("vllm:request_decode_time_seconds", "histogram"),
    ("vllm:request_inference_time_seconds", "histogram"),
    ("vllm:request_prompt_tokens", "histogram"),
    ("vllm:request_generation_tokens", "histogram"),
    ("vllm:iteration_tokens_total", "histogram"),
    ("vllm:request_params_n", "histogram"),
    ("vllm:request_params_max_tokens", "histogram"),
    ("vllm:cache_config_info", "gauge"),
    ("http_requests", "counter"),
    ("http_request_duration_seconds", "histogram"),
]

EXPECT_RE = re.compile(
    r"^\s*(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{(?P<labels>.*)\})?\s*(?P<op>==|>=|<=|=|>|<)\s*(?P<value>\S+)\s*$"
)
LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
OPS = {
    "=": lambda a, b: math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9),
    "==": lambda a, b: math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9),
    ">=": lambda a, b: a >= b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9),
    "<=": lambda a, b: a <= b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9),
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
}


def unescape(value):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def parse_expect(text):
    m = EXPECT_RE.match(text)
    if not m:
        raise ValueError(f"cannot parse --expect {text!r} (want NAME{{LABELS}}OP VALUE)")
    labels = {}
    rest = (m.group("labels") or "").strip()
    while rest:
        lm = LABEL_RE.match(rest)
        if not lm:
            raise ValueError(f"cannot parse the labels of --expect {text!r}")
        labels[lm.group(1)] = unescape(lm.group(2))
        rest = rest[lm.end():].strip()
    try:
        value = float(m.group("value"))
    except ValueError:
        raise ValueError(f"--expect {text!r}: {m.group('value')!r} is not a number") from None
    return m.group("name"), labels, m.group("op"), value


def read_source(source):
    if source == "-":
        return sys.stdin.read()
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=30) as resp:
            return resp.read().decode("utf-8")
    with open(source, encoding="utf-8") as f:
        return f.read()


def check_histogram(family, problems):
    """Buckets cumulative per series, ending with +Inf == _count."""
    series = {}
    counts = {}
    for s in family.samples:
        rest = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        if s.name == family.name + "_bucket":
            series.setdefault(rest, []).append((float(s.labels.get("le", "nan")), s.value))
        elif s.name == family.name + "_count":
            counts[rest] = s.value
    for rest, buckets in series.items():
        bounds = [b for b, _ in buckets]
        values = [v for _, v in buckets]
        if bounds != sorted(bounds) or not bounds or bounds[-1] != math.inf:
            problems.append(f"{family.name}{dict(rest)}: buckets out of order or no +Inf bucket")
        elif any(b > a for a, b in zip(values[1:], values)):
            problems.append(f"{family.name}{dict(rest)}: bucket counts are not cumulative")
        elif rest in counts and values[-1] != counts[rest]:
            problems.append(f"{family.name}{dict(rest)}: +Inf bucket {values[-1]} != _count {counts[rest]}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", help="metrics file, '-' for stdin, or http(s) URL")
    ap.add_argument("--model-name", help="value every vllm: series' model_name label must have")
    ap.add_argument("--expect", action="append", default=[], metavar="SAMPLE{LABELS}OP VALUE")
    args = ap.parse_args(argv)

    try:
        expects = [(e, *parse_expect(e)) for e in args.expect]
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        text = read_source(args.source)
        families = list(text_string_to_metric_families(text))
    except Exception as e:  # noqa: BLE001 - any read or parse failure is a usage-level error
        print(f"error: cannot read or parse {args.source}: {e}", file=sys.stderr)
        return 2

    problems = []
    by_name = {}
    for f in families:
        if f.name in by_name:
            problems.append(f"family {f.name} appears twice")
        by_name[f.name] = f
        if not f.documentation:
            problems.append(f"family {f.name} has no HELP text")
        if f.type == "histogram":
            check_histogram(f, problems)
        if f.name.startswith("vllm:"):
            for s in f.samples:
                got = s.labels.get("model_name")
                if got is None:
                    problems.append(f"{s.name}{s.labels}: no model_name label")
                elif args.model_name is not None and got != args.model_name:
                    problems.append(f"{s.name}{s.labels}: model_name {got!r} != {args.model_name!r}")

    for name, kind in EXPECTED_FAMILIES:
        f = by_name.get(name)
        if f is None:
            problems.append(f"missing family {name} ({kind})")
        elif f.type != kind:
            problems.append(f"family {name} has type {f.type}, expected {kind}")
        elif name.startswith("vllm:") and not f.samples:
            problems.append(f"family {name} has no samples")

    samples = [s for f in families for s in f.samples]
    for text_expect, name, labels, op, want in expects:
        matching = [s for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
        if not matching:
            problems.append(f"--expect {text_expect}: no sample {name} with labels {labels}")
            continue
        got = sum(s.value for s in matching)
        if not OPS[op](got, want):
            problems.append(f"--expect {text_expect}: {name}{labels or ''} is {got!r} (summed over {len(matching)} series)")

    if problems:
        for p in problems:
            print(f"FAIL: {p}", file=sys.stderr)
        print(f"{len(problems)} problem(s) in {args.source}", file=sys.stderr)
        return 1
    print(f"OK: {len(families)} families, {len(samples)} samples, {len(expects)} expectations in {args.source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
