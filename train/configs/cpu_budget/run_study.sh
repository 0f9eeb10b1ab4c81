#!/usr/bin/env bash
# CPU compute-budget study: validation PSNR reached at a fixed compute budget, per config.
#
# Each config trains for the whole epochs that fit in about 5 minutes at its own uncontended speed on 2 CPU cores
# in bf16 (4 x 192^2 crops, 75 steps per epoch; s/step from a 5-step timing before the study, idle machine: 32x1x1
# 1.03, 64x1x1 3.39, 32x2x2 3.85, 16x3x2 2.42), then is validated on all 145 validation pairs. Epochs, not the wall
# clock, fix the budget, so a busy machine cannot skew the comparison. Every run keeps its checkpoints: the winner
# continues with `--resume_from_checkpoint latest` (docs/training-mirnet-lol.md, "Decisive measurements").
#
#   bash train/configs/cpu_budget/run_study.sh            # needs data/lol from train/prepare_dataset.py lol
set -euo pipefail
cd "$(dirname "$0")/../../.."
LAUNCH="accelerate launch --cpu --num_processes 1 --num_machines 1 --mixed_precision bf16 --dynamo_backend no"
for spec in "lol_cpu_c32_rrg1_mrb1 4" "lol_cpu_c64_rrg1_mrb1 1" "lol_cpu_c32_rrg2_mrb2 1" "lol_cpu_c16_rrg3_mrb2 2" \
            "lol_cpu_c32_rrg1_mrb1_bias 4"; do
  set -- $spec
  python train/sweep.py "train/configs/cpu_budget/$1.yaml" --launcher "$LAUNCH" --output_root runs/cpu_budget \
    --set "stop_after_epoch=$2"
done
python train/sweep.py train/configs/cpu_budget/*.yaml --output_root runs/cpu_budget --table_only
