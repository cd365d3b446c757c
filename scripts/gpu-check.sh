#!/usr/bin/env bash
# The GPU check: run on a lent GPU machine (H100/H200, CUDA 13 driver, Python with PyTorch and
# transformers installed, no cargo, no network) in under 8 minutes.
#
# It needs the release binaries built with the CUDA backend, carried with the working tree:
#
#     cargo build --release --features cuda --bin vllm --bin vllmd --bin gpu-sampler-check
#     # carry: target/release/vllm, vllmd and gpu-sampler-check (about 50 MiB together)
#
# (or carry another folder holding them, e.g. target/cuda/release, and set VLLM_BIN_DIR to it).
# Python needs torch, transformers and safetensors; LD_LIBRARY_PATH gets the nvidia/*/lib
# folders of the installed wheels, where cudarc finds libcublas and libnvrtc.
#
# Steps (each bounded by `timeout`; a failed step is reported and the next one still runs):
#   1. nvidia-smi and our collect-env, whose JSON is checked against nvidia-smi;
#   2. random-weight Llama / Qwen2 / Qwen3 models (4 layers, GQA, head_dim 128) and two Llamas
#      with head_dim 64 and 256 (bf16 safetensors, tokenizer from the repo's tiny-model
#      fixture), and a Llama-3.1-8B config;
#   3. prompt logprobs of vllmd on the GPU vs transformers float32 on the GPU (max |error|,
#      threshold = 2x PyTorch's own bf16 error, at least 0.02; see serve_checks.py), and the
#      same for a greedy decode past 1,024 tokens of context (split-K decode attention);
#   4. greedy outputs of 64 concurrent requests vs the same requests one at a time (with
#      logprobs): a divergence fails only where the top-2 gap at its first differing token is
#      at least 0.05, closer calls are reported (bf16 cuBLAS is not batch-invariant);
#   4b. the GPU sampling kernel (what VLLM_RS_GPU_SAMPLER=1 runs) vs the CPU sampler on the
#      same rows and draws (gpu-sampler-check);
#   5. `vllm bench latency` (batch 1, 128 in / 128 out) and `vllm bench throughput` (1000
#      prompts, 128 in / 128 out) with dummy weights, and the same workload with transformers'
#      `generate` in PyTorch, plus the copy bandwidth for the batch-1 floor;
#   6. one table.
#
# Results and logs go to $GPU_CHECK_OUT (default target/gpu-check); the exit status is 0 when
# parity and batching pass for every model.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin=${VLLM_BIN_DIR:-target/release}
out=${GPU_CHECK_OUT:-target/gpu-check}
py=${PYTHON:-python3}
mkdir -p "$out"
out=$(cd "$out" && pwd)
export VLLM_CACHE_ROOT="$out/cache"   # NVRTC kernel cache; nothing is downloaded
export VLLM_LOGGING_LEVEL=${VLLM_LOGGING_LEVEL:-INFO}
start=$(date +%s)
step() { echo; echo "== [$(($(date +%s) - start))s] $*"; }

for b in vllm vllmd gpu-sampler-check; do
  [ -x "$bin/$b" ] || { echo "missing $bin/$b: build with --features cuda and carry it (see the header)" >&2; exit 2; }
done

# cudarc opens libcublas and libnvrtc at run time; PyTorch's wheels ship both under
# site-packages/nvidia/*/lib (cu13: nvidia/cu13/lib). Put every such folder on the path.
nvlibs=$("$py" - <<'PY'
import glob, os, site, sys
dirs = []
for base in site.getsitepackages() + [site.getusersitepackages()]:
    dirs += sorted(glob.glob(os.path.join(base, "nvidia", "*", "lib")))
    dirs += sorted(glob.glob(os.path.join(base, "torch", "lib")))
print(":".join(d for d in dirs if os.path.isdir(d)))
PY
)
export LD_LIBRARY_PATH="${nvlibs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

step "1. nvidia-smi and collect-env"
nvidia-smi || echo "nvidia-smi failed"
timeout 60 "$bin/vllm" collect-env || echo "collect-env failed"
timeout 60 "$py" scripts/gpu_check/collect_env.py "$bin/vllm" "$out/collect-env.json" || echo "collect-env JSON check failed"

step "2. random-weight models"
timeout 120 "$py" scripts/gpu_check/models.py "$out/models" || { echo "model generation failed" >&2; exit 1; }

step "3-4. parity with transformers and 64-vs-1 greedy, per model"
port=8711
for m in llama qwen2 qwen3 llama-hd64 llama-hd256; do
  timeout 150 "$py" scripts/gpu_check/serve_checks.py "$out/models/$m" "$root/$bin/vllmd" "$port" "$out/$m.json" || echo "$m: check failed (log: $out/$m.json.vllmd.log)"
  tail -n 5 "$out/$m.json.vllmd.log" 2>/dev/null | sed 's/^/    vllmd: /'
  port=$((port + 1))
done

step "4b. GPU sampler vs CPU sampler"
timeout 120 "$bin/gpu-sampler-check" "$out/sampler.json" || echo "gpu-sampler-check failed"

big="$out/models/llama-3.1-8b"
common=(--model "$big" --load-format dummy --device cuda --dtype bfloat16 --max-model-len 512 --input-len 128 --output-len 128)
step "5a. vllm bench latency (batch 1)"
timeout 180 "$bin/vllm" bench latency "${common[@]}" --batch-size 1 --num-iters-warmup 2 --num-iters 5 --output-json "$out/latency.json" 2>&1 | tail -n 25
step "5b. vllm bench throughput (1000 prompts)"
timeout 200 "$bin/vllm" bench throughput "${common[@]}" --dataset-name random --num-prompts 1000 --output-json "$out/throughput.json" 2>&1 | tail -n 25
step "5c. PyTorch generate, same workload"
timeout 150 "$py" scripts/gpu_check/torch_bench.py "$big" "$out/torch.json" || echo "PyTorch benchmark failed"

step "6. results (total $(($(date +%s) - start)) s)"
"$py" scripts/gpu_check/table.py "$out"
