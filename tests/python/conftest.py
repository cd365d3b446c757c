"""Fixtures for the end-to-end tests: a real `vllmd` (built by `cargo build --release`)
serving the default model on a free loopback port, and the golden reference data."""

import json
import os
import shutil
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


def test_deps_required() -> bool:
    """VLLM_REQUIRE_TEST_DEPS (set by scripts/test.sh, so by CI): a missing tool fails, not skips."""
    return os.environ.get("VLLM_REQUIRE_TEST_DEPS", "") not in ("", "0", "false")


def missing_test_dependency(why: str):
    if test_deps_required():
        pytest.fail(f"{why} (VLLM_REQUIRE_TEST_DEPS is set: a missing test dependency is a failure)")
    pytest.skip(why)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`ssl_context`: the server speaks TLS (pass --ssl-* in args); health checks use this context.
    `stderr`: a file path that receives the server's log (default: the test's stderr)."""

    def __init__(self, *args: str, env: dict | None = None, ssl_context=None, stderr: Path | None = None):
        self.port = free_port()
        self.ssl_context = ssl_context
        scheme = "https" if ssl_context is not None else "http"
        self.base = f"{scheme}://127.0.0.1:{self.port}"
        full_env = dict(os.environ)
        full_env.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        full_env.update(env or {})
        # The golden data are float32 CPU references: `--device auto` must not pick a bf16 GPU.
        device = [] if "--device" in args else ["--device", "cpu"]
        self.proc = subprocess.Popen(
            [str(VLLMD), "--host", "127.0.0.1", "--port", str(self.port), "--max-model-len", "2048", *device, *args],
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=open(stderr, "wb") if stderr is not None else None,
        )
        deadline = time.time() + 180
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vllmd exited with {self.proc.returncode} during start-up")
            try:
                with urllib.request.urlopen(self.base + "/health", timeout=2, context=ssl_context) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                self.stop()
                raise RuntimeError("vllmd did not become healthy in time")
            time.sleep(0.2)

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.base + path, timeout=30, context=self.ssl_context) as r:
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


# TLS test certificates (a CA, a server and a client certificate, and a stranger's), made with
# the `openssl` command at test time.
def openssl(*args: str, cwd: Path):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def issue(dir: Path, name: str, cn: str, usage: str):
    """A P-256 key and a certificate for it, signed by the test CA in `dir`."""
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=dir)
    (dir / f"{name}.ext").write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        f"extendedKeyUsage={usage}\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext", cwd=dir)


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    if shutil.which("openssl") is None:
        missing_test_dependency("the openssl command makes the test certificates")
    d = tmp_path_factory.mktemp("tls")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=vllm-rs test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    issue(d, "server", "localhost", "serverAuth")
    issue(d, "client", "test client", "clientAuth")
    # A second CA whose client certificate the server must refuse.
    other = d / "other"
    other.mkdir()
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=other CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=other)
    issue(other, "client", "stranger", "clientAuth")
    return d
