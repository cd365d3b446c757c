#!/usr/bin/env bash
# The side-by-side: `vllm bench serve` against vllmd and against llama.cpp's llama-server on the
# same GGUF, the same workloads, one server after the other (never both at once), both with the
# same number of threads. Prints both result blocks and one table of ratios; writes the raw JSON
# results under $RESULT_DIR. A benchmark, not a test: it never runs in CI.
#
# Usage: scripts/bench-vs-llamacpp.sh
# Env:   MODEL (default: the default model from scripts/fetch-models.sh)
#        THREADS (default 2), INPUT_LEN (256), OUTPUT_LEN (128),
#        PROMPTS_C1 (8, requests at concurrency 1), PROMPTS_C16 (32, requests at concurrency 16),
#        VLLMD_ARGS (extra vllmd flags, e.g. "--dtype bfloat16"), RESULT_DIR (target/bench-vs-llamacpp)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$(pwd)"
THREADS="${THREADS:-2}"
INPUT_LEN="${INPUT_LEN:-256}"
OUTPUT_LEN="${OUTPUT_LEN:-128}"
PROMPTS_C1="${PROMPTS_C1:-8}"
PROMPTS_C16="${PROMPTS_C16:-32}"
VLLMD_ARGS="${VLLMD_ARGS:-}"
RESULT_DIR="${RESULT_DIR:-$ROOT/target/bench-vs-llamacpp}"
PORT_OURS=18431
PORT_PEER=18432

scripts/fetch-models.sh default >/dev/null
MODEL="${MODEL:-${VLLM_CACHE_ROOT:-$HOME/.cache/vllm-rs}/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
[[ -f "$MODEL" ]] || { echo "model not found: $MODEL" >&2; exit 1; }

echo "== building vllm-rs (release)" >&2
cargo build --release --locked --bin vllm --bin vllmd --bin mem_bandwidth >&2
VLLM="$ROOT/target/release/vllm"
VLLMD="$ROOT/target/release/vllmd"

echo "== llama-server (cached after the first build, ~30 min on 2 cores)" >&2
LLAMA_SERVER="$(scripts/build-llama-server.sh | tail -n 1)"

mkdir -p "$RESULT_DIR"
SERVER_PID=""
cleanup() { [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null; SERVER_PID=""; }
trap cleanup EXIT

wait_ready() { # url
    for _ in $(seq 1 240); do
        curl -sf "$1" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    echo "server at $1 did not become ready" >&2
    return 1
}

# One workload against whichever server is up: $1 label, $2 port, $3 concurrency, $4 prompts.
run_bench() {
    local label="$1" port="$2" conc="$3" prompts="$4"
    "$VLLM" bench serve --backend openai --base-url "http://127.0.0.1:$port" --endpoint /v1/completions \
        --model bench-model --tokenizer "$MODEL" \
        --dataset-name random --random-input-len "$INPUT_LEN" --random-output-len "$OUTPUT_LEN" \
        --random-range-ratio 0 --num-prompts "$prompts" --max-concurrency "$conc" --request-rate inf \
        --ignore-eos --seed 0 --disable-tqdm \
        --save-result --result-dir "$RESULT_DIR" --result-filename "$label-c$conc.json" \
        | tee "$RESULT_DIR/$label-c$conc.txt"
}

# Slot context: every slot must hold a whole request (prompt + output) with room to spare.
CTX_PER_SLOT=$(( INPUT_LEN + OUTPUT_LEN + 64 ))

echo "== vllmd: $MODEL, $THREADS threads" >&2
RAYON_NUM_THREADS="$THREADS" "$VLLMD" --model "$MODEL" --served-model-name bench-model \
    --host 127.0.0.1 --port "$PORT_OURS" --max-num-seqs 16 $VLLMD_ARGS \
    >"$RESULT_DIR/vllmd.log" 2>&1 &
SERVER_PID=$!
wait_ready "http://127.0.0.1:$PORT_OURS/health"
run_bench vllmd "$PORT_OURS" 1 "$PROMPTS_C1"
run_bench vllmd "$PORT_OURS" 16 "$PROMPTS_C16"
cleanup
OURS_WEIGHT_MIB="$(grep -o 'weights_mib=[0-9]*' "$RESULT_DIR/vllmd.log" | head -n 1 | cut -d= -f2)"

echo "== llama-server: $MODEL, $THREADS threads, 16 parallel slots" >&2
"$LLAMA_SERVER" -m "$MODEL" --alias bench-model --host 127.0.0.1 --port "$PORT_PEER" \
    -t "$THREADS" -tb "$THREADS" -np 16 -c $(( CTX_PER_SLOT * 16 )) --cont-batching \
    >"$RESULT_DIR/llama-server.log" 2>&1 &
SERVER_PID=$!
wait_ready "http://127.0.0.1:$PORT_PEER/health"
run_bench llamacpp "$PORT_PEER" 1 "$PROMPTS_C1"
run_bench llamacpp "$PORT_PEER" 16 "$PROMPTS_C16"
cleanup

# The floor: bytes of weights each server reads per decode step over the bandwidth measured with
# the same thread count (llama.cpp reads the GGUF tensors as stored; we read what we loaded).
BW_JSON="$("$ROOT/target/release/mem_bandwidth" --threads "$THREADS" --json)"
python3 - "$RESULT_DIR/env.json" "$BW_JSON" "${OURS_WEIGHT_MIB:-0}" "$(stat -c %s "$MODEL")" "$THREADS" <<'PY'
import json, sys
out, bw, ours_mib, peer_bytes, threads = sys.argv[1:]
bw = json.loads(bw)
json.dump({"bandwidth_gb_s": bw["bandwidth_gb_s"],
           "bandwidth_how": f"mem_bandwidth, {threads} threads, best of 6 reads of a 1 GiB buffer",
           "ours_weight_bytes": int(ours_mib) * 2**20 or None,
           "peer_weight_bytes": int(peer_bytes)}, open(out, "w"))
PY
python3 "$ROOT/scripts/bench_compare.py" "$RESULT_DIR"
