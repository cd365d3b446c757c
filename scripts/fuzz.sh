#!/usr/bin/env bash
# Runs one fuzz target (or `all`) for longer than CI does, with a fresh random seed:
#
#   scripts/fuzz.sh TARGET SECONDS [SEED]
#
# Targets: gguf tokenizer safetensors chat_template completions chat tokenize yaml_config.
# Uses the same release build (and features) as scripts/test.sh, so nothing is rebuilt.
# A failing input is saved under target/release/tmp... (the path is printed) together with
# the seed and iteration that reproduce it:
#   VLLM_FUZZ_SEED=S VLLM_FUZZ_ONLY_ITERATION=I scripts/fuzz.sh TARGET 1
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 2 ]; then
  echo "usage: scripts/fuzz.sh TARGET|all SECONDS [SEED]" >&2
  exit 2
fi
target=$1
seconds=$2
seed=${3:-${VLLM_FUZZ_SEED:-0x$(od -An -N8 -tx8 /dev/urandom | tr -d ' \n')}}

filter=(--exact "fuzz_$target")
if [ "$target" = all ]; then
  filter=(fuzz_)
fi

export VLLM_FUZZ_SEED="$seed" VLLM_FUZZ_SECONDS="$seconds"
echo "== fuzz $target for ${seconds}s, seed $seed" >&2
cargo test --release --workspace --locked --features cuda --test fuzz_targets -- \
  "${filter[@]}" --nocapture --test-threads "${VLLM_FUZZ_THREADS:-2}"
