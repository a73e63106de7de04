#!/usr/bin/env bash
# Shatter and Gather on one lent GPU lease, in one call of at most about 9 minutes:
#   1. render the Shapes-Ref training cache on the machine's cores;
#   2. train one or more SaG recipes side by side on the GPU at a larger batch (each its own
#      process: their CPU work, slot pieces and the false-negative check, runs on its own
#      core), the frozen MiniLM read from the carried float32 transport file
#      (lab/scripts/train_minilm_transport.py);
#   3. export each run's model (model-stepN) and pack the runs for the trip back.
#
#   python lab/scripts/gpu_carry.py .gpucarry-sag --sag        # here, first (42 MiB)
#   echo /.gpucarry-sag/ >> .git/info/exclude
#   bash lab/scripts/gpu_sag_session.sh [--minutes 7] [--batch 128] [--lr 2e-4] [--steps 3000]
#                                   [--transport FILE] [--dry-run] RECIPE [RECIPE ...]
#
# What comes back ($OUT): session.log and session.tgz.part-NN, one archive holding, per
# recipe NAME, NAME/recipe.yaml, NAME/train.log and NAME/run (model-stepN and the logs;
# not the checkpoints, which hold the frozen MiniLM and would not fit the way back: a CPU
# run continues from model-stepN as its init.checkpoint).
# --dry-run: on a CPU, a few steps of each on the CPU and the packing.
set -uo pipefail
cd "$(dirname "$0")/../.."
MINUTES=7; BATCH=128; LR=2e-4; STEPS=3000; DRY=0; RECIPES=()
TRANSPORT=.gpucarry-sag/minilm-transport.safetensors
while [ $# -gt 0 ]; do
  case $1 in
    --minutes) MINUTES=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    --lr) LR=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --transport) TRANSPORT=$2; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) RECIPES+=("$1"); shift ;;
  esac
done
[ ${#RECIPES[@]} -ge 1 ] || { echo "usage: $0 [options] RECIPE [RECIPE ...]" >&2; exit 2; }
[ -f "$TRANSPORT" ] || { echo "no $TRANSPORT: run lab/scripts/gpu_carry.py .gpucarry-sag --sag" >&2
                         exit 2; }
OUT=${OUT:-/tmp/gpu_sag_session}; mkdir -p "$OUT"
WORK=$(mktemp -d)
exec > >(tee "$OUT/session.log") 2>&1
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=.venv/bin/python
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
T0=$SECONDS
DEVICE=cuda; CACHE_N=50000
if [ $DRY = 1 ]; then DEVICE=cpu; CACHE_N=64; STEPS=4; BATCH=4; MINUTES=1; else
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; fi

CACHE=/tmp/caches/train-default-$CACHE_N
[ -f "$CACHE/cache.json" ] || "$PY" -m wsris.cli data cache shapes:train "$CACHE" \
  --n $CACHE_N --workers 14 --no-progress || exit 1
echo "== cache: $((SECONDS - T0)) s"

PIDS=()
for R in "${RECIPES[@]}"; do
  NAME=$(basename "$R" .yaml); mkdir -p "$WORK/$NAME"
  # the recipe as it runs here: the cache rendered above
  "$PY" - "$R" "$WORK/$NAME/recipe.yaml" "$CACHE" "$DRY" "$CACHE_N" <<'EOF' || exit 1
import sys

import yaml

recipe = yaml.safe_load(open(sys.argv[1]))
recipe["data"]["train"] = f"shapes:train?length={sys.argv[5]}&cache={sys.argv[3]}"
if sys.argv[4] == "1":
    recipe["data"]["val"] = "shapes:val?length=8"
    recipe["schedule"].update(eval_every=2, eval_limit=4, log_every=1)
open(sys.argv[2], "w").write(yaml.safe_dump(recipe, sort_keys=False))
EOF
  "$PY" lab/scripts/train_minilm_transport.py "$TRANSPORT" -- "$WORK/$NAME/recipe.yaml" \
    --output-dir "$WORK/$NAME/run" --device $DEVICE --batch-size "$BATCH" --lr "$LR" \
    --steps "$STEPS" --time-limit "$MINUTES" > "$WORK/$NAME/train.log" 2>&1 &
  PIDS+=($!)
done
FAILED=0
for i in "${!PIDS[@]}"; do
  wait "${PIDS[$i]}"; RC=$?; echo "== ${RECIPES[$i]}: rc=$RC at $((SECONDS - T0)) s"
  [ $RC = 0 ] || { FAILED=1; tail -5 "$WORK/$(basename "${RECIPES[$i]}" .yaml)/train.log"; }
done
for R in "${RECIPES[@]}"; do
  NAME=$(basename "$R" .yaml)
  tail -c 2000 "$WORK/$NAME/train.log" | tr '\r' '\n' | grep -v "it/s\|s/it" | tail -4
  tail -n 2 "$WORK/$NAME/run/val_log.jsonl" 2>/dev/null | cut -c1-400
  if [ -f "$WORK/$NAME/run/checkpoints/last.pt" ]; then  # a time-limited stop leaves no model
    "$PY" lab/scripts/train_minilm_transport.py "$TRANSPORT" -- "$WORK/$NAME/recipe.yaml" \
      --output-dir "$WORK/$NAME/run" --export-only --device cpu | tail -2
  fi
  # checkpoints hold the frozen MiniLM and the optimiser (about 100 MB): too big for the
  # way back; a CPU run continues from the exported model (init.checkpoint) instead
  rm -rf "$WORK/$NAME/run"/checkpoints
done
echo "== done at $((SECONDS - T0)) s"
# pieces of 15 MiB: the device tool returns files of at most 16 MiB
(cd "$WORK" && tar czf - */) | split -b 15m -d - "$OUT/session.tgz.part-"
ls -la "$OUT"
[ $DRY = 1 ] && rm -rf "$WORK"
exit $FAILED  # what did train is packed all the same
