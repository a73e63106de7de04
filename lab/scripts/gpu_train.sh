#!/usr/bin/env bash
# Train a recipe on a CUDA machine for a few minutes at a larger batch; the run folder it
# writes (checkpoints/last.pt, train_log.jsonl, val_log.jsonl) resumes on the CPU with
# `wsris train RECIPE --output-dir RUN_DIR`. Works for either method (chunk or sag).
#
#   lab/scripts/gpu_train.sh RECIPE RUN_DIR [--minutes 9] [--batch 256] [--lr X] [--steps N] [--dry-run]
#
# Wheels missing on the GPU machine can travel in .whl/ (see the device tool's README);
# they are installed into /tmp/site first. Shapes-Ref training caches that the recipe names
# (shapes:...&cache=DIR) are rendered on that machine's cores on first use.
# --dry-run: on any machine (the CPU included) install, check the recipe and print the
# training command without running it.
set -euo pipefail
cd "$(dirname "$0")/../.."

usage() { echo "usage: $0 RECIPE RUN_DIR [--minutes M] [--batch B] [--lr X] [--steps N] [--dry-run]" >&2; exit 2; }
[ $# -ge 2 ] || usage
RECIPE=$1; RUN_DIR=$2; shift 2
MINUTES=9; BATCH=256; LR=""; STEPS=""; DRY=0
while [ $# -gt 0 ]; do
  case $1 in
    --minutes) MINUTES=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    --lr) LR=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    *) usage ;;
  esac
done
[ -f "$RECIPE" ] || { echo "recipe not found: $RECIPE" >&2; exit 2; }

PY=${PYTHON:-python3}
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$(pwd):${PYTHONPATH:-}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

LR_ARG=()
[ -n "$LR" ] && LR_ARG=(--lr "$LR")
[ -n "$STEPS" ] && LR_ARG+=(--steps "$STEPS")
CMD=("$PY" -m wsris.cli train "$RECIPE" --output-dir "$RUN_DIR" --device cuda
     --batch-size "$BATCH" "${LR_ARG[@]}" --time-limit "$MINUTES")
"$PY" -c "
import sys
from wsris.training.config import TrainConfig
from wsris.training.config import model_config
c = TrainConfig.from_yaml(sys.argv[1])
print('recipe ok:', c.method, model_config(c)['architecture'].get('stem', 'patch'), 'stem')
" "$RECIPE"
if [ "$DRY" = 1 ]; then
  echo "dry run: would run: ${CMD[*]}"
  exit 0
fi
"$PY" - <<'EOF'
import sys

import torch

if not torch.cuda.is_available():
    sys.exit("no CUDA device: run with --dry-run on a CPU machine")
print("CUDA:", torch.cuda.get_device_name(0), "torch", torch.__version__)
EOF
# the time limit stops training cleanly with a checkpoint
"${CMD[@]}"
echo "run folder: $RUN_DIR (resume on the CPU: wsris train $RECIPE --output-dir $RUN_DIR)"
