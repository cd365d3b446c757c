#!/usr/bin/env bash
# The side-by-side: `vllm bench serve` against vllmd and against llama.cpp's llama-server on the
# same GGUF, the same workloads, one server after the other (never both at once), both with the
# same number of threads. For each model and concurrency C, llama-server runs with `-np C` (its
# fair setting: one slot per concurrent request) and vllmd with `--max-num-seqs C`. Records each
# server's resident memory, the memory bandwidth and the CPU kernel path, and prints one table of
# ratios per model x workload x concurrency. A benchmark, not a test: it never runs in CI.
#
# Usage: scripts/bench-vs-llamacpp.sh
# Env:   MODELS (default: "smollm2 qwen"; paths to GGUF files also work), THREADS (2),
#        WORKLOADS (default "decode:64:256 prefill:1024:16" = name:input_len:output_len),
#        CONCURRENCY (default "1 16"), PROMPTS_C1 (2), PROMPTS_CN (16: requests at concurrency > 1),
#        VLLMD_ARGS (extra vllmd flags, e.g. "--dtype float32"), VLLM_CPU_ISA (forces our path),
#        RESULT_DIR (target/bench-vs-llamacpp)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$(pwd)"
THREADS="${THREADS:-2}"
MODELS="${MODELS:-smollm2 qwen}"
WORKLOADS="${WORKLOADS:-decode:64:256 prefill:1024:16}"
CONCURRENCY="${CONCURRENCY:-1 16}"
PROMPTS_C1="${PROMPTS_C1:-2}"
PROMPTS_CN="${PROMPTS_CN:-16}"
VLLMD_ARGS="${VLLMD_ARGS:-}"
RESULT_DIR="${RESULT_DIR:-$ROOT/target/bench-vs-llamacpp}"
PORT_OURS=18431
PORT_PEER=18432
CACHE="${VLLM_CACHE_ROOT:-$HOME/.cache/vllm-rs}/models"

model_path() {
    case "$1" in
        smollm2) scripts/fetch-models.sh default >/dev/null; echo "$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf" ;;
        qwen) scripts/fetch-models.sh qwen >/dev/null; echo "$CACHE/qwen2.5-coder-0.5b-instruct.gguf" ;;
        *) echo "$1" ;;
    esac
}

echo "== building vllm-rs (release)" >&2
cargo build --release --locked --bin vllm --bin vllmd --bin mem_bandwidth >&2
VLLM="$ROOT/target/release/vllm"
VLLMD="$ROOT/target/release/vllmd"

echo "== llama-server (cached after the first build, ~30 min on 2 cores)" >&2
LLAMA_SERVER="$(scripts/build-llama-server.sh | tail -n 1)"

rm -rf "$RESULT_DIR" && mkdir -p "$RESULT_DIR"
SERVER_PID=""
cleanup() { [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null; SERVER_PID=""; }
trap cleanup EXIT

wait_ready() { # url
    for _ in $(seq 1 480); do
        curl -sf "$1" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    echo "server at $1 did not become ready" >&2
    return 1
}

# Resident memory of the running server, after its workloads: current and peak (MiB).
record_memory() { # label
    local rss hwm
    rss=$(awk '/^VmRSS/ {print int($2/1024)}' "/proc/$SERVER_PID/status")
    hwm=$(awk '/^VmHWM/ {print int($2/1024)}' "/proc/$SERVER_PID/status")
    echo "{\"rss_mib\": $rss, \"peak_rss_mib\": $hwm}" >"$RESULT_DIR/$1.mem.json"
}

# All workloads against whichever server is up: $1 label prefix, $2 port, $3 concurrency, $4 model.
run_workloads() {
    local who="$1" port="$2" conc="$3" model="$4" prompts
    prompts=$([[ "$conc" -eq 1 ]] && echo "$PROMPTS_C1" || echo "$PROMPTS_CN")
    for w in $WORKLOADS; do
        IFS=: read -r name in_len out_len <<<"$w"
        "$VLLM" bench serve --backend openai --base-url "http://127.0.0.1:$port" --endpoint /v1/completions \
            --model bench-model --tokenizer "$model" \
            --dataset-name random --random-input-len "$in_len" --random-output-len "$out_len" \
            --random-range-ratio 0 --num-prompts "$prompts" --max-concurrency "$conc" --request-rate inf \
            --ignore-eos --seed 0 --disable-tqdm \
            --save-result --result-dir "$RESULT_DIR" --result-filename "$who-$name.json" \
            >"$RESULT_DIR/$who-$name.txt"
    done
}

max_in=0; max_out=0
for w in $WORKLOADS; do
    IFS=: read -r _ in_len out_len <<<"$w"
    (( in_len > max_in )) && max_in=$in_len
    (( out_len > max_out )) && max_out=$out_len
done
# Slot context: every slot must hold a whole request (prompt + output) with room to spare.
CTX_PER_SLOT=$(( max_in + max_out + 64 ))

for m in $MODELS; do
    MODEL="$(model_path "$m")"
    [[ -f "$MODEL" ]] || { echo "model not found: $MODEL" >&2; exit 1; }
    tag="$(basename "$MODEL" .gguf)"
    for conc in $CONCURRENCY; do
        echo "== $tag, concurrency $conc: vllmd ($THREADS threads, --max-num-seqs $conc)" >&2
        RAYON_NUM_THREADS="$THREADS" "$VLLMD" --model "$MODEL" --served-model-name bench-model \
            --host 127.0.0.1 --port "$PORT_OURS" --max-num-seqs "$conc" --max-model-len "$CTX_PER_SLOT" $VLLMD_ARGS \
            >"$RESULT_DIR/$tag-c$conc-vllmd.log" 2>&1 &
        SERVER_PID=$!
        wait_ready "http://127.0.0.1:$PORT_OURS/health"
        run_workloads "$tag-c$conc-vllmd" "$PORT_OURS" "$conc" "$MODEL"
        record_memory "$tag-c$conc-vllmd"
        cleanup

        echo "== $tag, concurrency $conc: llama-server ($THREADS threads, -np $conc)" >&2
        "$LLAMA_SERVER" -m "$MODEL" --alias bench-model --host 127.0.0.1 --port "$PORT_PEER" \
            -t "$THREADS" -tb "$THREADS" -np "$conc" -c $(( CTX_PER_SLOT * conc )) --cont-batching \
            >"$RESULT_DIR/$tag-c$conc-llamacpp.log" 2>&1 &
        SERVER_PID=$!
        wait_ready "http://127.0.0.1:$PORT_PEER/health"
        run_workloads "$tag-c$conc-llamacpp" "$PORT_PEER" "$conc" "$MODEL"
        record_memory "$tag-c$conc-llamacpp"
        cleanup
    done
done

# The floor: bytes of weights each server reads per decode step over the bandwidth measured with
# the same thread count; and which kernel path ran (from vllmd's start-up log).
BW_JSON="$("$ROOT/target/release/mem_bandwidth" --threads "$THREADS" --json)"
ISA="$(grep -ho 'isa="\?[a-z0-9]*' "$RESULT_DIR"/*-vllmd.log | head -n 1 | sed 's/isa="\?//')"
python3 - "$RESULT_DIR/env.json" "$BW_JSON" "$THREADS" "${ISA:-unknown}" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)" <<'PY'
import json, sys
out, bw, threads, isa, cpu = sys.argv[1:]
bw = json.loads(bw)
json.dump({"bandwidth_gb_s": bw["bandwidth_gb_s"], "threads": int(threads), "isa": isa, "cpu": cpu.strip(),
           "bandwidth_how": f"mem_bandwidth, {threads} threads, best of 6 reads of a 1 GiB buffer"}, open(out, "w"))
PY
python3 "$ROOT/scripts/bench_compare.py" "$RESULT_DIR"
