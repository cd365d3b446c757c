"""Models by name (`vllmd --model org/name`) against a mock Hub (tests/python/mock_hub.py): no
test touches the real Hub. The cache vllmd writes is checked with Python's `huggingface_hub`
(the reference for the layout), and a cache `huggingface_hub` wrote is served offline."""

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, VLLMD, Server, missing_test_dependency
from mock_hub import MockHub, Repo

TINY = ROOT / "engine" / "tests" / "fixtures" / "tiny" / "qwen3"
EXPECTED = json.loads((TINY / "expected.json").read_text())


@pytest.fixture(scope="module")
def hf():
    try:
        import huggingface_hub
    except ImportError:
        missing_test_dependency("huggingface_hub is not installed (pip install -r tests/python/requirements.txt)")
    return huggingface_hub


def tiny_repo(repo_id="org/tiny", config_patch=None):
    repo = Repo.from_dir(repo_id, TINY)
    if config_patch is not None:
        config = json.loads(repo.files["config.json"])
        config.update(config_patch)
        repo = Repo(repo_id, {**repo.files, "config.json": json.dumps(config).encode()})
    return repo


def hub_env(tmp_path: Path, hub: MockHub | None, **extra) -> dict:
    env = {
        "HF_HOME": str(tmp_path / "hf"),
        "HF_ENDPOINT": hub.base if hub is not None else "http://127.0.0.1:9",
        # The tiny model knows 128 positions; conftest's server asks for 2048.
        "VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1",
        "HF_TOKEN": "",
        "HF_HUB_OFFLINE": "",
        "HF_HUB_CACHE": "",
        "VLLM_LOGGING_LEVEL": "INFO",
    }
    env.update(extra)
    return env


def greedy_ids(server: Server, model: str) -> list[int]:
    """The 16-token greedy continuation of the reference input, as token ids."""
    import urllib.request

    body = {
        "model": model,
        "prompt": EXPECTED["input_ids"],
        "max_tokens": EXPECTED["greedy"]["max_new_tokens"],
        "temperature": 0,
        "logprobs": 1,
        "return_tokens_as_token_ids": True,
        "ignore_eos": True,
    }
    req = urllib.request.Request(server.base + "/v1/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        out = json.loads(r.read())
    return [int(t.removeprefix("token_id:")) for t in out["choices"][0]["logprobs"]["tokens"]]


def served_models(server: Server) -> list[str]:
    return [m["id"] for m in json.loads(server.get("/v1/models"))["data"]]


def run_vllmd(args: list[str], env: dict, timeout=120) -> subprocess.CompletedProcess:
    full = dict(os.environ)
    full.update(env)
    return subprocess.run([str(VLLMD), "--device", "cpu", "--port", "0", *args], env=full, capture_output=True, text=True, timeout=timeout)


def test_repo_id_is_downloaded_served_under_its_name_and_the_cache_is_huggingface_hubs(tmp_path, hf):
    repo = tiny_repo()
    hub = MockHub([repo])
    try:
        server = Server("--model", "org/tiny", env=hub_env(tmp_path, hub))
        try:
            # vLLM serves a Hub model under its repo id.
            assert served_models(server) == ["org/tiny"]
            # transformers' greedy continuation of the reference input (scripts/make-tiny-models.py).
            assert greedy_ids(server, "org/tiny") == EXPECTED["greedy"]["token_ids"]
        finally:
            server.stop()
    finally:
        hub.stop()
    cache = tmp_path / "hf" / "hub"
    # huggingface_hub finds every file where vllmd put it, with the content of the Hub.
    for name, data in repo.files.items():
        found = hf.try_to_load_from_cache("org/tiny", name, cache_dir=cache)
        assert isinstance(found, str), (name, found)
        assert Path(found).read_bytes() == data, name
    info = hf.scan_cache_dir(cache)
    assert not info.warnings, info.warnings
    [cached] = list(info.repos)
    assert cached.repo_id == "org/tiny" and cached.repo_type == "model"
    assert cached.size_on_disk == sum(len(d) for d in repo.files.values())
    [rev] = list(cached.revisions)
    assert rev.commit_hash == repo.commit
    assert set(rev.refs) == {"main"}
    assert {f.file_name for f in rev.files} == set(repo.files)
    # LFS blobs are named by their sha256, as on the Hub.
    weights = next(f for f in rev.files if f.file_name == "model.safetensors")
    assert weights.blob_path.name == hashlib.sha256(repo.files["model.safetensors"]).hexdigest()


def test_a_cache_written_by_huggingface_hub_is_served_offline(tmp_path, hf):
    repo = tiny_repo()
    hub = MockHub([repo])
    cache = tmp_path / "pycache"
    try:
        hf.snapshot_download("org/tiny", cache_dir=cache, endpoint=hub.base)
    finally:
        hub.stop()
    # The mock is gone: everything must come from the cache.
    env = hub_env(tmp_path, None, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache))
    server = Server("--model", "org/tiny", env=env)
    try:
        assert greedy_ids(server, "org/tiny") == EXPECTED["greedy"]["token_ids"]
    finally:
        server.stop()


def test_offline_without_the_files_is_one_clear_error(tmp_path):
    r = run_vllmd(["--model", "org/absent"], hub_env(tmp_path, None, HF_HUB_OFFLINE="1"))
    assert r.returncode != 0
    assert "org/absent" in r.stderr and "HF_HUB_OFFLINE" in r.stderr, r.stderr


def test_an_interrupted_download_resumes(tmp_path):
    repo = tiny_repo()
    hub = MockHub([repo], drop_once="model.safetensors")
    try:
        server = Server("--model", "org/tiny", env=hub_env(tmp_path, hub))
        try:
            assert greedy_ids(server, "org/tiny") == EXPECTED["greedy"]["token_ids"]
        finally:
            server.stop()
        sha = hashlib.sha256(repo.files["model.safetensors"]).hexdigest()
        gets = [rng for method, path, rng in hub.requests if method == "GET" and path in (f"/cdn/{sha}", "/org/tiny/resolve/main/model.safetensors")]
        half = len(repo.files["model.safetensors"]) // 2
        # After the cut, the download asks only for the bytes it lacks.
        assert f"bytes={half}-" in gets, gets
    finally:
        hub.stop()
    blob = tmp_path / "hf" / "hub" / "models--org--tiny" / "blobs" / sha
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == sha


def test_a_wrong_token_is_one_clear_401_error_and_the_right_one_works(tmp_path):
    hub = MockHub([tiny_repo()], token="hf_right")
    try:
        r = run_vllmd(["--model", "org/tiny"], hub_env(tmp_path, hub, HF_TOKEN="hf_wrong"))
        assert r.returncode != 0
        lines = [l for l in r.stderr.splitlines() if "401" in l]
        assert len(lines) == 1, r.stderr
        assert "org/tiny" in lines[0] and "config.json" in lines[0] and "--hf-token" in lines[0], lines[0]
        assert "hf_wrong" not in r.stderr
        # --hf-token wins over HF_TOKEN, as in vLLM.
        server = Server("--model", "org/tiny", "--hf-token", "hf_right", env=hub_env(tmp_path, hub, HF_TOKEN="hf_wrong"))
        try:
            assert served_models(server) == ["org/tiny"]
        finally:
            server.stop()
    finally:
        hub.stop()


@pytest.mark.parametrize(
    "patch, named",
    [
        ({"architectures": ["DeepseekV3ForCausalLM"]}, ["DeepseekV3ForCausalLM", "Qwen3ForCausalLM"]),
        ({"quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128}}, ["awq", "quantization"]),
        ({"dtype": "float8_e4m3fn"}, ["float8_e4m3fn", "bfloat16"]),
    ],
)
def test_an_unservable_model_is_refused_before_any_weight_is_downloaded(tmp_path, patch, named):
    hub = MockHub([tiny_repo(config_patch=patch)])
    try:
        r = run_vllmd(["--model", "org/tiny"], hub_env(tmp_path, hub))
        assert r.returncode != 0
        for word in named:
            assert word in r.stderr, (word, r.stderr)
        asked = hub.paths_requested()
        assert "/org/tiny/resolve/main/config.json" in asked, asked
        assert not [p for p in asked if p.endswith(".safetensors") or p.startswith("/cdn/")], asked
    finally:
        hub.stop()


def test_an_unknown_repo_is_a_404_naming_it(tmp_path):
    hub = MockHub([tiny_repo()])
    try:
        r = run_vllmd(["--model", "org/missing"], hub_env(tmp_path, hub))
        assert r.returncode != 0
        assert "org/missing" in r.stderr and "404" in r.stderr, r.stderr
    finally:
        hub.stop()
