#!/usr/bin/env bash
# Everything one lent GPU lease is for, in one call of at most about 9 minutes:
#   1. render the Shapes-Ref training cache on the machine's cores;
#   2. train a chunk recipe on the GPU at a larger batch (lab/scripts/gpu_train.sh), while
#   3. the CUDA tests and the CPU-vs-CUDA / autocast comparisons run beside it
#      (lab/scripts/gpu_check.sh, steps tests and compare: no timings);
#   4. once training has stopped, the paper-size GPU timings alone on the GPU (step bench);
#   5. the run exported (model-stepN) and everything packed for the trip back.
#
#   python lab/scripts/gpu_carry.py .gpucarry --chunk-init RUN/model-stepN   # here, first
#   bash lab/scripts/gpu_session.sh [--recipe R] [--minutes 3.5] [--batch 128] [--lr 4e-4]
#                               [--steps 4000] [--dry-run]
#
# What comes back ($OUT: the lent machine's folder that the device tool returns, at most 8
# files of 16 MiB): session.log, and session.tgz.part-NN, pieces of one archive holding the
# gpu-*.json results, the training log and the run folder (model-stepN, logs, and
# checkpoints/last.pt, so that the run resumes on a CPU):
#   cat FILES_AT/session.tgz.part-* | tar xzf - -C DIR
#   wsris train DIR/recipe.yaml --output-dir DIR/run   # resume (from this repository's root,
#                                                       # where .gpucarry/chunk-init is)
# --dry-run: on a CPU, the same steps with each script's dry run, and the packing.
set -uo pipefail
cd "$(dirname "$0")/../.."
RECIPE_IN=configs/chunk_shapes_stage2.yaml; MINUTES=3.5; BATCH=128; LR=4e-4; STEPS=4000; DRY=0
while [ $# -gt 0 ]; do
  case $1 in
    --recipe) RECIPE_IN=$2; shift 2 ;;
    --minutes) MINUTES=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    --lr) LR=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    *) echo "usage: $0 [--recipe R] [--minutes M] [--batch B] [--lr X] [--steps N] [--dry-run]" >&2
       exit 2 ;;
  esac
done
OUT=${OUT:-/tmp/gpu_session}; mkdir -p "$OUT"
WORK=$(mktemp -d); RESULTS=$WORK/results; RUN=$WORK/run; mkdir -p "$RESULTS"
# on the lent machine the folder stays, so that a next call can resume the run there
[ $DRY = 1 ] && trap 'rm -rf "$WORK"' EXIT
exec > >(tee "$OUT/session.log") 2>&1
PY=${PYTHON:-python3}
[ -d .gpucarry/chunk-init ] || [ $DRY = 1 ] || {
  echo "no .gpucarry/chunk-init: run lab/scripts/gpu_carry.py first" >&2; exit 2; }
if [ $DRY = 0 ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .gpucarry/wheels/*.whl || exit 1
  export PYTHONPATH="$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
DRYFLAG=(); [ $DRY = 1 ] && DRYFLAG=(--dry-run)
T0=$SECONDS

# the recipe as it runs here: the carried first-stage model, the cache rendered below
CACHE=/tmp/caches/train-default
RECIPE=$WORK/recipe.yaml
"$PY" - "$RECIPE_IN" "$RECIPE" "$CACHE" <<'EOF' || exit 1
import sys

import yaml

recipe = yaml.safe_load(open(sys.argv[1]))
if recipe.get("model", {}).get("init", {}).get("checkpoint"):
    recipe["model"]["init"]["checkpoint"] = ".gpucarry/chunk-init"
recipe["data"]["train"] = f"shapes:train?length=50000&cache={sys.argv[3]}"
open(sys.argv[2], "w").write(yaml.safe_dump(recipe, sort_keys=False))
EOF
if [ $DRY = 0 ]; then
  "$PY" -m wsris.cli data cache shapes:train "$CACHE" --n 50000 --workers 14 --no-progress
  echo "== cache: $((SECONDS - T0)) s"
fi
bash lab/scripts/gpu_train.sh "$RECIPE" "$RUN" --minutes "$MINUTES" --batch "$BATCH" \
  --lr "$LR" --steps "$STEPS" "${DRYFLAG[@]}" > "$RESULTS/train.log" 2>&1 &
TRAIN=$!
# not timed, so they may share the GPU with the training run
OUT=$RESULTS GPU_CHECK_STEPS="tests compare" GPU_CHECK_SUMMARY_SUFFIX=-checks \
  bash lab/scripts/gpu_check.sh "${DRYFLAG[@]}"
echo "== checks done at $((SECONDS - T0)) s; waiting for training"
wait $TRAIN; echo "== training rc=$? at $((SECONDS - T0)) s"
tail -c 3000 "$RESULTS/train.log" | tr '\r' '\n' | grep -v "it/s\|s/it" | tail -15
if [ -f "$RUN/checkpoints/last.pt" ]; then  # a time-limited stop leaves no model: export it
  "$PY" -m wsris.cli train "$RECIPE" --output-dir "$RUN" --export-only --device cpu
fi
OUT=$RESULTS GPU_CHECK_STEPS="bench" GPU_CHECK_T_BENCH=${GPU_CHECK_T_BENCH:-200} \
  bash lab/scripts/gpu_check.sh "${DRYFLAG[@]}"
echo "== bench done at $((SECONDS - T0)) s"
rm -f "$RUN"/checkpoints/step*.pt  # kept checkpoints would not fit the way back
# one archive in pieces of 15 MiB: the device tool returns files of at most 16 MiB
tar czf - -C "$WORK" results $( [ -d "$RUN" ] && echo run ) recipe.yaml \
  | split -b 15m -d - "$OUT/session.tgz.part-"
ls -la "$OUT"
echo "run folder on this machine: $RUN (recipe $RECIPE)"
