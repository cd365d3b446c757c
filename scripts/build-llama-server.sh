#!/usr/bin/env bash
# Builds llama.cpp's `llama-server` (the peer in scripts/bench-vs-llamacpp.sh) from the llama.cpp
# sources vendored in the llama-cpp-python sdist on PyPI. About 30 minutes on 2 cores, so the
# binary is cached outside the repository and this never runs in CI.
#
# Usage: scripts/build-llama-server.sh        prints the path of the binary on its last line
# Env:   VLLM_CACHE_ROOT (default ~/.cache/vllm-rs), LLAMA_CPP_PYTHON_VERSION (default 0.3.36),
#        BUILD_JOBS (default: nproc)
set -euo pipefail

VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
CACHE="${VLLM_CACHE_ROOT:-$HOME/.cache/vllm-rs}/llama.cpp/$VERSION"
BIN="$CACHE/build/bin/llama-server"
JOBS="${BUILD_JOBS:-$(nproc)}"

if [[ -x "$BIN" ]]; then
    echo "$BIN"
    exit 0
fi

mkdir -p "$CACHE"
cd "$CACHE"

# The build tools come from PyPI like everything else here: a private venv, never the system's.
if [[ ! -x venv/bin/python ]]; then
    python3 -m venv venv
fi
venv/bin/pip install --quiet --disable-pip-version-check scikit-build-core cmake ninja >&2

if [[ ! -d src ]]; then
    echo "fetching the llama-cpp-python $VERSION sdist ..." >&2
    rm -rf dl && mkdir dl
    venv/bin/pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
        --no-build-isolation "llama-cpp-python==$VERSION" -d dl >&2
    tar -xzf dl/llama_cpp_python-"$VERSION".tar.gz -C dl
    mv dl/llama_cpp_python-"$VERSION"/vendor/llama.cpp src
    rm -rf dl
fi

echo "configuring llama.cpp (CPU, native, server on) ..." >&2
PATH="$CACHE/venv/bin:$PATH" cmake -S src -B build -G Ninja \
    -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_BUILD_SERVER=ON \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF >&2
echo "building llama-server with $JOBS jobs (about 30 minutes on 2 cores) ..." >&2
PATH="$CACHE/venv/bin:$PATH" cmake --build build --target llama-server -j "$JOBS" >&2
echo "$BIN"
