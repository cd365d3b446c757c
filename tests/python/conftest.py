"""Fixtures for the end-to-end tests: a real `vllmd` (built by `cargo build --release`)
serving the default model on a free loopback port, and the golden reference data."""

import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VLLMD = ROOT / "target" / "release" / "vllmd"
REFERENCE = ROOT / "engine" / "tests" / "fixtures" / "reference" / "smollm2-135m-q4_1.dev.json"
API_KEY = "test-key-123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, *args: str, env: dict | None = None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        full_env = dict(os.environ)
        full_env.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [str(VLLMD), "--host", "127.0.0.1", "--port", str(self.port), "--max-model-len", "2048", *args],
            env=full_env,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.time() + 180
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vllmd exited with {self.proc.returncode} during start-up")
            try:
                with urllib.request.urlopen(self.base + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                self.stop()
                raise RuntimeError("vllmd did not become healthy in time")
            time.sleep(0.2)

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.base + path, timeout=30) as r:
            return r.read().decode()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def server():
    if not VLLMD.exists():
        pytest.fail(f"{VLLMD} not built: run `cargo build --release` first")
    s = Server("--api-key", API_KEY, "--served-model-name", "smollm2", "smollm2-alias", "--enable-prompt-tokens-details")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def client(server):
    import openai

    return openai.OpenAI(base_url=server.base + "/v1", api_key=API_KEY, max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def reference():
    return json.loads(REFERENCE.read_text())["prompts"]
