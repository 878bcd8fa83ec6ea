"""The seed method's two-stage sampling of training voxels.

Net 1: every lesion voxel plus as many random non-lesion candidate voxels.
Net 2: every lesion voxel plus as many of net 1's false positives (hard negatives), topped up
with random candidates when net 1 makes fewer mistakes than there are lesion voxels.
"""

from __future__ import annotations

import numpy as np


def _cap(voxels: np.ndarray, cap: int | None, rng: np.random.Generator) -> np.ndarray:
    if cap is None or len(voxels) <= cap:
        return voxels
    return voxels[rng.choice(len(voxels), cap, replace=False)]


def _pick(pool: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    if n <= 0 or len(pool) == 0:
        return pool[:0]
    return pool[rng.choice(len(pool), n, replace=len(pool) < n)]


def _labelled(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    voxels = np.concatenate([pos, neg]).astype(np.int64)
    labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))]).astype(np.int64)
    return voxels, labels


def net1_samples(
    mask: np.ndarray,
    candidates: np.ndarray,
    rng: np.random.Generator,
    max_lesion_voxels: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Balanced samples for net 1: voxels (N, 3) and labels (N,) (1 = lesion)."""
    pos = _cap(np.argwhere(mask), max_lesion_voxels, rng)
    neg = _pick(np.argwhere(candidates & ~mask), len(pos), rng)
    return _labelled(pos, neg)


def net2_samples(
    mask: np.ndarray,
    candidates: np.ndarray,
    prob1: np.ndarray,
    net1_threshold: float,
    rng: np.random.Generator,
    max_lesion_voxels: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Samples for net 2: lesion voxels plus net 1's false positives as negatives."""
    pos = _cap(np.argwhere(mask), max_lesion_voxels, rng)
    false_pos = (prob1 > net1_threshold) & ~mask
    hard = np.argwhere(false_pos)
    hard = hard[rng.choice(len(hard), min(len(hard), len(pos)), replace=False)]
    fill = _pick(np.argwhere(candidates & ~mask & ~false_pos), len(pos) - len(hard), rng)
    return _labelled(pos, np.concatenate([hard, fill]))
