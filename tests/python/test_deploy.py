"""The Kubernetes deployment (deploy/): the Helm chart renders with Helm's own engine
(helm-python-sdk), every object validates against the Kubernetes OpenAPI schemas
(kubernetes-validate), the plain manifests in deploy/k8s are the chart's current render, the
objects point at each other correctly, and the Grafana dashboard and the autoscaler query only
metrics that the real `vllmd` exports (scraped and parsed with prometheus_client)."""

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from conftest import ROOT, VLLMD

import helm_python as helm  # noqa: E402
import kubernetes_validate  # noqa: E402

CHART = ROOT / "deploy" / "helm" / "vllm-rs"
DASHBOARD = ROOT / "deploy" / "grafana" / "vllm-rs.json"
# The oldest Kubernetes release still in support when this was written, and the newest the
# validator knows: the objects must be valid on both.
KUBE_VERSIONS = ["1.32.0", kubernetes_validate.latest_version()]

VARIANTS = {
    "defaults": {},
    "everything": {
        "autoscaling": {"enabled": True},
        "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
        "apiKey": {"value": "secret-key"},
        "hfTokenSecret": "hf-token",
        "extraArgs": ["--max-model-len=4096"],
        "extraEnv": [{"name": "VLLM_LOGGING_LEVEL", "value": "INFO"}],
        "nodeSelector": {"kubernetes.io/arch": "amd64"},
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "podAnnotations": {"a": "b"},
        "servedModelName": "qwen",
    },
    "existing-claim-and-secret": {
        "modelCache": {"existingClaim": "models"},
        "apiKey": {"existingSecret": "keys", "secretKey": "k"},
    },
    "ephemeral-cache": {"modelCache": {"size": ""}},
}


def render(values: dict) -> list[dict]:
    with helm.Chart.load(str(CHART)) as chart:
        out = chart.render(values, name="vllm-rs", namespace="default", is_install=True)
    objects = []
    for key, text in out.items():
        if key.endswith(".txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def by_kind(objects: list[dict]) -> dict[str, list[dict]]:
    kinds: dict[str, list[dict]] = {}
    for o in objects:
        kinds.setdefault(o["kind"], []).append(o)
    return kinds


def test_helm_lint_is_clean():
    report = helm.lint(str(CHART), strict=True)
    assert report["errors"] == []
    # Severity 2 = warning, 3 = error; the only info we accept is the missing icon.
    serious = [m for m in report["messages"] if m["severity"] >= 2]
    assert serious == [], serious


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_object_validates_against_the_kubernetes_schemas(variant):
    objects = render(VARIANTS[variant])
    assert objects
    for obj in objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD (prometheus-operator), not in Kubernetes' schemas: checked below
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("variant", VARIANTS)
def test_objects_point_at_each_other(variant):
    values = VARIANTS[variant]
    kinds = by_kind(render(values))
    [dep] = kinds["Deployment"]
    [svc] = kinds["Service"]
    pod = dep["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert svc["spec"]["selector"].items() <= labels.items()
    [container] = pod["spec"]["containers"]
    port_names = {p["name"] for p in container["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] in port_names
    for p in svc["spec"]["ports"]:
        assert p["targetPort"] in port_names
    # Volumes: every mount has a volume; a created claim or Secret is the one referenced.
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert {m["name"] for m in container["volumeMounts"]} <= volumes.keys()
    claim = volumes["model-cache"].get("persistentVolumeClaim", {}).get("claimName")
    created_claims = {o["metadata"]["name"] for o in kinds.get("PersistentVolumeClaim", [])}
    if values.get("modelCache", {}).get("existingClaim"):
        assert claim == values["modelCache"]["existingClaim"] and not created_claims
    elif values.get("modelCache", {}).get("size", "20Gi"):
        assert {claim} == created_claims
        assert dep["spec"]["strategy"]["type"] == "Recreate"
    else:
        assert "emptyDir" in volumes["model-cache"] and not created_claims
    env = {e["name"]: e for e in container["env"]}
    secrets = {o["metadata"]["name"]: o for o in kinds.get("Secret", [])}
    if "apiKey" in values:
        ref = env["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"]
        if values["apiKey"].get("value"):
            assert ref["key"] in secrets[ref["name"]]["data"]
        else:
            assert ref["name"] == values["apiKey"]["existingSecret"] and not secrets
    else:
        assert "VLLM_API_KEY" not in env and not secrets
    for hpa in kinds.get("HorizontalPodAutoscaler", []):
        assert hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
        assert "replicas" not in dep["spec"]  # the HPA owns the replica count
    for sm in kinds.get("ServiceMonitor", []):
        assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
        svc_ports = {p["name"] for p in svc["spec"]["ports"]}
        for ep in sm["spec"]["endpoints"]:
            assert ep["port"] in svc_ports and ep["path"] == "/metrics"


def test_container_flags_are_vllmd_flags():
    """Every flag the chart passes is one `vllmd --help` lists (a renamed flag fails here)."""
    help_text = subprocess.run([str(VLLMD), "--help"], capture_output=True, text=True, check=True).stdout
    [dep] = by_kind(render(VARIANTS["everything"]))["Deployment"]
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    for arg in args:
        flag = arg.split("=", 1)[0]
        assert re.search(rf"(^|\s){re.escape(flag)}[\s=,<]", help_text), flag


def test_plain_manifests_are_the_current_render():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "render-deploy.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def dashboard_queries() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in dash["templating"]["list"] if "definition" in v]
    return exprs


def test_dashboard_and_autoscaler_use_only_exported_metrics(server, client):
    # One finished request so the histograms and counters carry samples.
    client.completions.create(model="smollm2", prompt="Hello", max_tokens=4)
    with urllib.request.urlopen(server.base + "/metrics", timeout=30) as r:
        families = list(text_string_to_metric_families(r.read().decode()))
    samples = {s.name: s.labels for f in families for s in f.samples}
    queried = set()
    for expr in dashboard_queries():
        queried.update(re.findall(r"vllm:[a-z0-9_:]+", expr))
    assert len(queried) >= 12
    for metric in sorted(queried):
        assert metric in samples, f"the dashboard queries {metric}, which vllmd does not export"
        assert "model_name" in samples[metric], metric
    assert "finished_reason" in samples["vllm:request_success_total"]
    # The HPA's metric is vllm:num_requests_waiting as the Prometheus adapter renames it
    # (deploy/README.md: `:` becomes `_`).
    [hpa] = by_kind(render(VARIANTS["everything"]))["HorizontalPodAutoscaler"]
    name = hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]
    assert name.replace("vllm_", "vllm:", 1) in samples


def test_probe_paths_answer_on_the_real_server(server):
    [dep] = by_kind(render({}))["Deployment"]
    container = dep["spec"]["template"]["spec"]["containers"][0]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        with urllib.request.urlopen(server.base + container[probe]["httpGet"]["path"], timeout=10) as r:
            assert r.status == 200


def test_containerfile_ships_only_the_two_binaries_as_non_root():
    text = (ROOT / "Containerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) == 2, "multi-stage: a build stage and a runtime stage"
    runtime = stages[-1]
    copies = re.findall(r"^COPY --from=build (.+) (\S+)$", runtime, flags=re.M)
    assert copies == [("/out/vllmd /out/vllm", "/usr/local/bin/")]
    for binary in ("vllmd", "vllm"):
        assert (ROOT / "target" / "release" / binary).exists(), binary
    [user] = re.findall(r"^USER (\S+)$", runtime, flags=re.M)
    assert not user.startswith(("0", "root"))
    [dep] = by_kind(render({}))["Deployment"]
    assert str(dep["spec"]["template"]["spec"]["securityContext"]["runAsUser"]) == user.split(":")[0]
    assert re.search(r'^ENTRYPOINT \["vllmd"\]$', runtime, flags=re.M)
