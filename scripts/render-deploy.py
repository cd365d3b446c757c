#!/usr/bin/env python3
"""Renders the Helm chart deploy/helm/vllm-rs into the plain manifests of deploy/k8s/.

    python3 scripts/render-deploy.py           # rewrite deploy/k8s/*.yaml
    python3 scripts/render-deploy.py --check   # exit 1 if they differ from a fresh render

Rendering uses Helm's own engine through `helm-python-sdk` (PyPI: Helm's Go SDK behind a C ABI),
so no `helm` binary is needed; tests/python/test_deploy.py runs the check in CI. The values are
the chart's defaults overlaid with deploy/k8s/values.yaml.
"""

import argparse
import sys
from pathlib import Path

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "vllm-rs"
OUT = ROOT / "deploy" / "k8s"
RELEASE = "vllm-rs"
NAMESPACE = "default"
HEADER = "# Rendered from deploy/helm/vllm-rs by scripts/render-deploy.py: edit the chart, not this file.\n"


def render(values: dict | None = None) -> dict[str, str]:
    """Template path (relative to templates/) -> rendered YAML, without empty outputs and NOTES."""
    with helm.Chart.load(str(CHART)) as chart:
        out = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    rendered = {}
    for key, text in out.items():
        name = key.split("/templates/", 1)[-1]
        if name.endswith(".txt") or not text.strip():
            continue
        rendered[name] = text.strip() + "\n"
    return rendered


def plain_manifests() -> dict[str, str]:
    values = yaml.safe_load((OUT / "values.yaml").read_text()) or {}
    return {name: HEADER + text for name, text in render(values).items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args()
    wanted = plain_manifests()
    present = {p.name: p.read_text() for p in OUT.glob("*.yaml") if p.name != "values.yaml"}
    if args.check:
        stale = sorted(n for n in set(wanted) | set(present) if wanted.get(n) != present.get(n))
        if stale:
            print(f"deploy/k8s is out of date ({', '.join(stale)}): run scripts/render-deploy.py", file=sys.stderr)
            return 1
        return 0
    for name in set(present) - set(wanted):
        (OUT / name).unlink()
    for name, text in wanted.items():
        (OUT / name).write_text(text)
    print(f"wrote {len(wanted)} manifests to deploy/k8s/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
