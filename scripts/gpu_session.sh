#!/usr/bin/env bash
# Everything one lent GPU lease is for, in one call of at most about 9 minutes:
#   1. render the Shapes-Ref training cache on the machine's cores;
#   2. train a chunk recipe on the GPU at a larger batch (scripts/gpu_train.sh), while
#   3. the CUDA tests and the CPU-vs-CUDA / autocast comparisons run beside it
#      (scripts/gpu_check.sh, steps tests and compare: no timings);
#   4. once training has stopped, the paper-size GPU timings alone on the GPU (step bench);
#   5. the run's model and logs packed for the trip back (the 43 MB checkpoint stays).
#
#   python scripts/gpu_carry.py .gpucarry --chunk-init RUN/model-stepN   # here, first
#   bash scripts/gpu_session.sh [--minutes 3.5] [--batch 128] [--lr 4e-4] [--steps 4000]
#
# Results go to $OUT (the lent machine's folder that comes back): gpu-*.json,
# gpu-tests.xml, session.log and chunk_gpu.tgz.part-* (cat them, then tar xzf).
set -uo pipefail
cd "$(dirname "$0")/.."
MINUTES=3.5; BATCH=128; LR=4e-4; STEPS=4000
while [ $# -gt 0 ]; do
  case $1 in
    --minutes) MINUTES=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    --lr) LR=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    *) echo "usage: $0 [--minutes M] [--batch B] [--lr X] [--steps N]" >&2; exit 2 ;;
  esac
done
OUT=${OUT:-/tmp/gpu_session}; mkdir -p "$OUT"
exec > >(tee "$OUT/session.log") 2>&1
PY=${PYTHON:-python3}
[ -d .gpucarry/chunk-init ] || { echo "no .gpucarry/chunk-init: run scripts/gpu_carry.py" >&2; exit 2; }
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .gpucarry/wheels/*.whl || exit 1
export PYTHONPATH="$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
T0=$SECONDS

CACHE=/tmp/caches/train-default
"$PY" -m wsris.cli data cache shapes:train "$CACHE" --n 50000 --workers 14 --no-progress
echo "== cache: $((SECONDS - T0)) s"
RECIPE=/tmp/chunk_gpu.yaml
"$PY" - "$RECIPE" "$CACHE" <<'EOF'
import sys

import yaml

recipe = yaml.safe_load(open("configs/chunk_shapes_stage2.yaml"))
recipe["model"]["init"]["checkpoint"] = ".gpucarry/chunk-init"
recipe["data"]["train"] = f"shapes:train?length=50000&cache={sys.argv[2]}"
open(sys.argv[1], "w").write(yaml.safe_dump(recipe, sort_keys=False))
EOF
RUN=/tmp/chunk_gpu
bash scripts/gpu_train.sh "$RECIPE" "$RUN" --minutes "$MINUTES" --batch "$BATCH" \
  --lr "$LR" --steps "$STEPS" > "$OUT/train.log" 2>&1 &
TRAIN=$!
# not timed, so they may share the GPU with the training run
GPU_CHECK_STEPS="tests compare" GPU_CHECK_SUMMARY_SUFFIX=-checks bash scripts/gpu_check.sh
echo "== checks done at $((SECONDS - T0)) s; waiting for training"
wait $TRAIN; echo "== training rc=$? at $((SECONDS - T0)) s"
tail -c 3000 "$OUT/train.log" | tr '\r' '\n' | grep -v "it/s\|s/it" | tail -15
GPU_CHECK_STEPS="bench" GPU_CHECK_T_BENCH=${GPU_CHECK_T_BENCH:-200} bash scripts/gpu_check.sh
echo "== bench done at $((SECONDS - T0)) s"
if [ -d "$RUN/model" ]; then
  tar czf - -C "$RUN" model train_log.jsonl val_log.jsonl recipe.json \
    | split -b 15m - "$OUT/chunk_gpu.tgz.part-"
fi
ls -la "$OUT"
