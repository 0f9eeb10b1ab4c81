#!/usr/bin/env bash
# Issue 20, item 6: g's recipe (train/configs/exposure/g_scratch.yaml) with far more training pixels on one lent GPU,
# in one device call: the recipe's validation run (j, 300 pairs) and the final fit (k, all 445 pairs) side by side on
# the same GPU, in lockstep (same recipe, same epoch count), so g's shipping rule applies to them unchanged: j's last
# epoch is scored here on the lossless validation split; k ships only if j passes.
#
#   bash train/gpu_fit.sh prepare     # here: the lossy LoL copy and the wheels the GPU machine lacks; prints the call
#   bash train/gpu_fit.sh run         # there (the device tool's command): train both, write both models to $OUT
#   bash train/gpu_fit.sh smoke       # here: the whole `run` path on the CPU on 4 pairs in about 2 minutes
#
# The epoch count is set by measurement: both runs train one epoch, the slower one's epoch time fixes how many fit in
# BUDGET_SECONDS, and both resume to that many epochs (cosine horizon included; train.py's --time_budget_minutes is
# the safety net). Results come back as one tar file per run (the exported EMA model folder) plus the logs.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${DATA:-data/lol-webp90}            # our485 as lossy WebP (the lossless copy does not fit the 64 MiB transfer)
BATCH=${BATCH:-8}                        # whole 600x400 photos per step (g: 2)
BUDGET_SECONDS=${BUDGET_SECONDS:-420}    # training time for both runs, from the start of `run`
RUNS=${RUNS:-runs/gpu}
OUT=${OUT:-$RUNS/out}

common() {  # the flags j and k share on top of their config files (flags override --config)
  echo --dataset "$DATA" --batch_size "$BATCH" --checkpoints_total_limit 1 --report_to none
}

launch() {  # launch NAME CONFIG EXTRA...: one run in the background, its log in $RUNS/NAME.log
  local name=$1 config=$2; shift 2
  PYTHONUNBUFFERED=1 python3 -m accelerate.commands.launch --num_processes 1 --num_machines 1 --mixed_precision no \
    --dynamo_backend no $LAUNCH_FLAGS train/train.py --config "$config" $(common) --output_dir "$RUNS/$name" --experiment "gpu_$name" "$@" \
    >> "$RUNS/$name.log" 2>&1 &
}

both() {  # both EXTRA...: j and k with the same extra flags, waited for; fails if either fails
  launch j train/configs/exposure/g_scratch.yaml --validation_split none "$@"; local pj=$!
  launch k train/configs/exposure/h_final_fit.yaml "$@"; local pk=$!
  local status=0
  wait $pj || status=$?
  wait $pk || status=$?
  if [ $status -ne 0 ]; then tail -n 30 "$RUNS"/j.log "$RUNS"/k.log; exit $status; fi
}

epoch_seconds() {  # the slower run's epoch 1 in seconds: training, checkpoint and export, and 1 s for the curves
  python3 - "$RUNS" <<'EOF'
import json, sys
from pathlib import Path
epochs = [json.loads((Path(sys.argv[1]) / r / "trainer_state.json").read_text())["history"][0] for r in "jk"]
print(round(max(e["train_seconds"] + e["checkpoint_seconds"] + 1 for e in epochs), 1))
EOF
}

run() {
  local started=$SECONDS
  mkdir -p "$RUNS" "$OUT"
  if ! python3 -c "import datasets" 2> /dev/null; then  # the GPU machine lacks datasets: the carried wheels
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
  fi
  export PYTHONPATH=$PWD:${PYTHONPATH:-}  # modeling_mirnet from this checkout, not installed
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv | tee "$OUT/gpu.txt"

  both --epochs 1000 --stop_after_epoch 1  # one epoch each, to measure
  local per_epoch elapsed left epochs
  per_epoch=$(epoch_seconds)
  elapsed=$((SECONDS - started))
  # what is left after paying the start-up (imports, decoding, cudnn's search) again on resuming, and 20 s to export
  left=$(python3 -c "print($BUDGET_SECONDS - $elapsed - ($elapsed - $per_epoch) - 20)")
  epochs=$(python3 -c "import math; print(max(1, 1 + math.floor($left / $per_epoch)))")
  echo "epoch 1: ${per_epoch} s (slower run), ${elapsed} s with start-up: training to ${epochs} epochs" | tee "$OUT/plan.txt"
  if [ "$epochs" -gt 1 ]; then
    both --resume latest --epochs "$epochs" --time_budget_minutes "$(python3 -c "print($left / 60)")"
  fi

  for name in j k; do  # model/ holds the last epoch's EMA weights (no validation split): what ships, if anything
    tar -czf "$OUT/$name.tar.gz" -C "$RUNS/$name" model trainer_state.json
    cp "$RUNS/$name.log" "$OUT/$name.log"
  done
  echo "done in $((SECONDS - started)) s: $(ls "$OUT" | tr '\n' ' ')"
}

prepare() {
  [ -d "$DATA" ] || python3 train/prepare_dataset.py lol --root ../shared/data/lol --output "$DATA" --webp-quality 90
  mkdir -p .whl  # ignored by .gitignore, like data/
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
  du -sh "$DATA" .whl
  echo "device tool: run(command='bash train/gpu_fit.sh run', carry=['$DATA', '.whl'], timeout_s=560)"
}

smoke() {  # the `run` path on the CPU, on 4 training pairs: checks the plumbing, not the numbers
  local tiny=$RUNS/smoke-data
  rm -rf "$RUNS"; mkdir -p "$tiny"
  python3 - "$DATA" "$tiny" <<'EOF'
import sys
from datasets import load_dataset
source, target = sys.argv[1:]
for split in ("train", "validation"):
    rows = load_dataset("parquet", data_files=f"{source}/data/{split}-*.parquet", split="train").select(range(4))
    rows.to_parquet(f"{target}/data/{split}-00000-of-00001.parquet")
EOF
  DATA=$tiny BATCH=2 BUDGET_SECONDS=${SMOKE_SECONDS:-150} LAUNCH_FLAGS=--cpu run
}

LAUNCH_FLAGS=${LAUNCH_FLAGS:-}
case "${1:-}" in
  prepare|run|smoke) "$1" ;;
  *) echo "usage: bash train/gpu_fit.sh prepare|run|smoke" >&2; exit 2 ;;
esac
