"""Patch-wise reference inference: the seed method's way, one 11³ patch per scored voxel.

Kept for verification (dense must equal it) and for benchmarks, not for serving.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

PATCH = 11
HALF = PATCH // 2


def patch_view(stack: np.ndarray) -> np.ndarray:
    """A (C, X, Y, Z, 11, 11, 11) view: the zero-padded patch centred on every voxel."""
    padded = np.pad(stack.astype(np.float32, copy=False), ((0, 0), *[(HALF, HALF)] * 3))
    return sliding_window_view(padded, (PATCH, PATCH, PATCH), axis=(1, 2, 3))


def extract_patches(view: np.ndarray, voxels: np.ndarray) -> np.ndarray:
    """Patches (N, C, 11, 11, 11) centred on ``voxels`` (N, 3) from a :func:`patch_view`."""
    patches = view[:, voxels[:, 0], voxels[:, 1], voxels[:, 2]]
    return np.ascontiguousarray(np.moveaxis(patches, 1, 0))


def patchwise_predict(
    session: Any, stack: np.ndarray, voxels: np.ndarray, batch: int = 2048
) -> np.ndarray:
    """Lesion probability (N,) of the patch ONNX classifier at each voxel of ``voxels`` (N, 3)."""
    view = patch_view(stack)
    input_name = session.get_inputs()[0].name
    out = np.empty(len(voxels), dtype=np.float32)
    for i in range(0, len(voxels), batch):
        patches = extract_patches(view, voxels[i : i + batch])
        out[i : i + batch] = session.run(None, {input_name: patches})[0].reshape(-1)
    return out


def patchwise_volume(
    session: Any, stack: np.ndarray, roi: np.ndarray, batch: int = 2048
) -> np.ndarray:
    """Probability volume scored patch by patch at every ``roi`` voxel (0 elsewhere)."""
    voxels = np.argwhere(roi)
    prob = np.zeros(roi.shape, dtype=np.float32)
    if len(voxels):
        prob[roi] = patchwise_predict(session, stack, voxels, batch)
    return prob
