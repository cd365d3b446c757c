#!/usr/bin/env bash
# Soak test: N minutes of mixed load (tests/python/loadgen.py) on the default model, with a KV
# cache small enough that long prompts fill it and force preemption. Not run in CI (CI runs the
# 60-second tests/python/test_soak.py). Prints the report (markdown) and writes it as JSON.
#
#   scripts/soak.sh [MINUTES] [extra vllmd flags...]      (default 10 minutes)
#
# Environment: VLLMD (server binary, default target/release/vllmd), PYTHON (default
# target/pyenv/bin/python), SOAK_CONCURRENCY (mixed clients, default 4), SOAK_LONG_CLIENTS
# (long-prompt clients, default 2), SOAK_KV_BLOCKS (default 40 blocks of 16 tokens, with
# --max-model-len 512 and long prompts of 250-400 tokens; extra flags after MINUTES win),
# SOAK_JSON (report file, default soak-report.json). Traffic goes to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-10}
shift || true
VLLMD=${VLLMD:-target/release/vllmd}
PYTHON=${PYTHON:-target/pyenv/bin/python}
PORT=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
LOG=$(mktemp -t vllmd-soak.XXXXXX.log)

VLLM_SERVER_DEV_MODE=1 VLLM_LOGGING_LEVEL=${VLLM_LOGGING_LEVEL:-WARNING} "$VLLMD" \
  --host 127.0.0.1 --port "$PORT" --device cpu --max-model-len 512 \
  --num-gpu-blocks-override "${SOAK_KV_BLOCKS:-40}" --max-num-seqs 16 "$@" 2>"$LOG" &
PID=$!
trap 'kill "$PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  kill -0 "$PID" 2>/dev/null || { echo "vllmd exited during start-up; log: $LOG" >&2; exit 1; }
  sleep 0.5
done
echo "soak: $MINUTES min against vllmd pid $PID on port $PORT (log: $LOG)" >&2
status=0
PYTHONPATH=tests/python "$PYTHON" tests/python/loadgen.py --base "http://127.0.0.1:$PORT" \
  --seconds "$((MINUTES * 60))" --concurrency "${SOAK_CONCURRENCY:-4}" \
  --long-clients "${SOAK_LONG_CLIENTS:-2}" --pid "$PID" --json "${SOAK_JSON:-soak-report.json}" || status=$?
kill -TERM "$PID"
wait "$PID" || { echo "vllmd exited with $? after SIGTERM" >&2; status=1; }
trap - EXIT
exit "$status"
