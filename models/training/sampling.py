"""The seed method's two-stage sampling of training voxels.

Net 1: every lesion voxel plus as many random non-lesion candidate voxels.
Net 2: every lesion voxel plus as many of net 1's false positives (hard negatives), topped up
with random candidates when net 1 makes fewer mistakes than there are lesion voxels.

When a volume holds more lesion voxels than the cap, the seed draws them uniformly: a
confluent 20 ml lesion then fills the sample and a 15-voxel lesion gets one draw or none.
``lesion_balance`` β spreads that share of the draw evenly over the lesions (each lesion the
same share, whatever its size) and leaves the rest uniform over voxels (0: the seed's draw;
1: every lesion the same share), so that the nets see small lesions, which lesion-wise
detection counts as much as large ones, while large lesions keep a voxel-wise share.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

_CONNECTIVITY = ndimage.generate_binary_structure(3, 3)  # lesions are 26-connected


def lesion_weights(mask: np.ndarray, balance: float) -> np.ndarray:
    """Draw probability of each lesion voxel (``np.argwhere(mask)`` order).

    ``balance`` of the mass is shared equally by the lesions (26-connected), the rest
    equally by the voxels.
    """
    labels, n = ndimage.label(mask, structure=_CONNECTIVITY)
    sizes = np.bincount(labels.ravel())
    own = sizes[labels[mask.astype(bool)]].astype(np.float64)
    return (1.0 - balance) / own.size + balance / (n * own)


def _cap(voxels: np.ndarray, cap: int | None, rng: np.random.Generator) -> np.ndarray:
    if cap is None or len(voxels) <= cap:
        return voxels
    return voxels[rng.choice(len(voxels), cap, replace=False)]


def _lesion_voxels(
    mask: np.ndarray, cap: int | None, rng: np.random.Generator, balance: float
) -> np.ndarray:
    pos = np.argwhere(mask)
    if balance == 0.0 or cap is None or len(pos) <= cap:
        return _cap(pos, cap, rng)  # the seed's draw, RNG stream unchanged
    return pos[rng.choice(len(pos), cap, replace=False, p=lesion_weights(mask, balance))]


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
    lesion_balance: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Balanced samples for net 1: voxels (N, 3) and labels (N,) (1 = lesion)."""
    pos = _lesion_voxels(mask, max_lesion_voxels, rng, lesion_balance)
    neg = _pick(np.argwhere(candidates & ~mask), len(pos), rng)
    return _labelled(pos, neg)


def net2_samples(
    mask: np.ndarray,
    candidates: np.ndarray,
    prob1: np.ndarray,
    net1_threshold: float,
    rng: np.random.Generator,
    max_lesion_voxels: int | None = None,
    lesion_balance: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Samples for net 2: lesion voxels plus net 1's false positives as negatives."""
    pos = _lesion_voxels(mask, max_lesion_voxels, rng, lesion_balance)
    false_pos = (prob1 > net1_threshold) & ~mask
    hard = np.argwhere(false_pos)
    hard = hard[rng.choice(len(hard), min(len(hard), len(pos)), replace=False)]
    fill = _pick(np.argwhere(candidates & ~mask & ~false_pos), len(pos) - len(hard), rng)
    return _labelled(pos, np.concatenate([hard, fill]))
