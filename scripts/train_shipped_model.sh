#!/usr/bin/env bash
# Reproduces the shipped model models/shipped/flair_t1 and its leave-one-out figures.
# Needs the [cpu,train] extras and ../shared/data. About 1 h on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=../shared/data/open-ms
mkdir -p runs
[ -f runs/lesion_bank.npz ] || mslesion lesion-bank "$DATA/cross_sectional_masks_only" --out runs/lesion_bank.npz
OPTS=(--lesion-bank runs/lesion_bank.npz --synthetic-copies 2 --lesions-per-copy 30
      --max-lesion-voxels 3000 --batch-size 256 --max-epochs 8 --patience 2 --seed 42
      --clinical-simulation 0.7)
mslesion train "$DATA/cross_sectional" --modalities flair,t1 --out models/shipped/flair_t1 \
    "${OPTS[@]}" --name ms-cascade-flair-t1 --version 1.1.0 --quiet
python scripts/leave_one_out.py --data "$DATA/cross_sectional" --lesion-bank runs/lesion_bank.npz "${OPTS[@]:2}" \
    --out runs/loo --json docs/results/leave_one_out.json
