#!/usr/bin/env bash
# Reproduces the shipped models (models/shipped/{flair,flair_t1,flair_t1_t2}) from
# ../shared/data: both sites prepared with the serving preprocessing, the cross-site recipe
# "full" (wm-peak standardisation, template white matter as a channel, contrast, thick-slice
# and bias augmentation, lesion synthesis). Needs the [cpu,train] extras; ~25 min per model
# on 2 cores. OUT (default models/shipped) may point elsewhere to compare before replacing.
# Bit-for-bit the same weights only on the same CPU instruction set and library versions:
# compare training.environment in the manifests (models/training/environment.py).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=../shared/data
OUT=${OUT:-models/shipped}
P=runs/prepared
mkdir -p runs
[ -f runs/lesion_bank.npz ] || mslesion lesion-bank "$DATA/open-ms/cross_sectional_masks_only" --out runs/lesion_bank.npz
mslesion prepare "$DATA/open-ms/cross_sectional" --out $P/cross_sectional
mslesion prepare "$DATA/insights-ms" --out $P/insights-ms
mslesion prepare "$DATA/insights-ms-flair-only" --out $P/insights-ms-flair-only
OPTS=(--standardisation wm-peak --context wm_prior --contrast-gamma 0.4 --candidate-threshold 0.1
      --lesion-bank runs/lesion_bank.npz --synthetic-copies 2 --lesions-per-copy 30
      --clinical-simulation 0.7 --max-lesion-voxels 1000 --batch-size 256 --max-epochs 6
      --patience 2 --seed 42 --version 2.0.0 --quiet)
mslesion train $P/cross_sectional $P/insights-ms $P/insights-ms-flair-only --modalities flair \
    --out "$OUT/flair" --name ms-cascade-flair "${OPTS[@]}"
# 2.1.0: inputs smoothed inside the brain (σ 0.5 voxel) before standardisation, so that the
# lesion load does not depend on how the acquisition falls on the model grid (issue 11).
mslesion train $P/cross_sectional $P/insights-ms --modalities flair,t1 \
    --out "$OUT/flair_t1" --name ms-cascade-flair-t1 "${OPTS[@]}" --smoothing 0.5 --version 2.1.0
mslesion train $P/cross_sectional $P/insights-ms --modalities flair,t1,t2 \
    --out "$OUT/flair_t1_t2" --name ms-cascade-flair-t1-t2 "${OPTS[@]}"
# The follow-up change detector (models/change): the same nets on synthetic visit pairs of every
# annotated scan (real lesion shapes pasted in, existing lesions grown; see
# models/change/MODEL_CARD.md).
mslesion train-change $P/cross_sectional $P/insights-ms $P/insights-ms-flair-only \
    --out "${CHANGE_OUT:-models/change}" --lesion-bank runs/lesion_bank.npz --pairs-per-subject 4 \
    --seed 42 --version 0.1.0 --quiet
