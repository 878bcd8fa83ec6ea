"""Dense whole-volume inference in tiles that bound memory.

The dense ONNX graph maps an input tile of edge ``n`` to ``n - 9`` outputs; output voxel ``i``
is the 11³ patch classifier centred on input voxel ``i + 5``. Tiles read their halo from the
real neighbouring voxels and zeros outside the volume, exactly as patch extraction does, so
the result equals the patch-wise classifier voxel for voxel.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

HALO_BEFORE = 5
HALO_AFTER = 4
# Cost of scoring one voxel patch-wise relative to one voxel of a dense tile, measured on
# 2 CPU cores with ONNX Runtime (184 µs vs 6 µs, docs/BENCHMARKS.md). A tile whose voxels of
# interest are fewer than tile³ / PATCH_COST is cheaper to score patch by patch.
PATCH_COST = 30.0

Progress = Callable[[int, int], None]


def roi_tiles(roi: np.ndarray, tile: int) -> list[tuple[slice, slice, slice]]:
    """Full-size output tiles (edge ``tile``) that contain a roi voxel.

    The tiles lie on a grid anchored at ``roi``'s bounding box and may reach past the volume's
    far edge.
    """
    idx = np.nonzero(roi)
    if idx[0].size == 0:
        return []
    lo = [int(i.min()) for i in idx]
    hi = [int(i.max()) + 1 for i in idx]
    boxes = []
    for start in itertools.product(*(range(lo[a], hi[a], tile) for a in range(3))):
        box = tuple(slice(s, s + tile) for s in start)
        if roi[box].any():  # numpy clips slices past the edge
            boxes.append(box)
    return boxes  # type: ignore[return-value]


def _overhang(boxes: list[tuple[slice, slice, slice]], shape: tuple[int, ...]) -> list[int]:
    return [max([0] + [b[a].stop - shape[a] for b in boxes]) for a in range(3)]


def _input_tile(padded: np.ndarray, box: tuple[slice, slice, slice]) -> np.ndarray:
    # Output voxel v sits at padded index v + HALO_BEFORE; its patch starts at padded index v.
    sl = tuple(slice(b.start, b.stop + HALO_BEFORE + HALO_AFTER) for b in box)
    return padded[(slice(None), *sl)]


def split_sparse_tiles(
    roi: np.ndarray, boxes: list[tuple[slice, slice, slice]], tile: int, patch_cost: float
) -> tuple[list[tuple[slice, slice, slice]], np.ndarray]:
    """Keep dense the tiles worth it; return the voxels (N, 3) of the others."""
    dense_boxes, sparse = [], []
    for box in boxes:
        inside = np.argwhere(roi[box])
        if len(inside) * patch_cost < tile**3:
            sparse.append(inside + [b.start for b in box])
        else:
            dense_boxes.append(box)
    voxels = np.concatenate(sparse) if sparse else np.zeros((0, 3), dtype=np.int64)
    return dense_boxes, voxels


def dense_predict(
    session: Any,
    stack: np.ndarray,
    roi: np.ndarray,
    tile: int = 40,
    batch: int = 1,
    progress: Progress | None = None,
    patch_session: Any | None = None,
    patch_cost: float = PATCH_COST,
) -> np.ndarray:
    """Lesion probability at every ``roi`` voxel (0 elsewhere) from a dense ONNX session.

    Every tile has the same shape (the volume is zero-padded past its far edge where a tile
    overhangs), so ONNX Runtime plans one shape and ``batch`` tiles can run together. With a
    ``patch_session`` (the same net's patch form), tiles holding few voxels of interest are
    scored patch by patch instead: both forms give the same probabilities (to ~1e-6), and a
    sparse region such as net 2's candidates costs far less that way.
    """
    boxes = roi_tiles(roi, tile)
    prob = np.zeros(roi.shape, dtype=np.float32)
    if not boxes:
        return prob
    if patch_session is not None:
        boxes, voxels = split_sparse_tiles(roi, boxes, tile, patch_cost)
        if len(voxels):
            from mslesion.services.segmentation.patchwise import patchwise_predict

            prob[voxels[:, 0], voxels[:, 1], voxels[:, 2]] = patchwise_predict(
                patch_session, stack, voxels
            )
        if not boxes:
            return prob
    extra = _overhang(boxes, roi.shape)
    padded = np.pad(
        stack.astype(np.float32, copy=False),
        ((0, 0), *[(HALO_BEFORE, HALO_AFTER + e) for e in extra]),
    )
    prob_ext = np.zeros([n + e for n, e in zip(roi.shape, extra, strict=True)], np.float32)
    roi_ext = np.pad(roi, [(0, e) for e in extra])
    input_name = session.get_inputs()[0].name
    for i in range(0, len(boxes), batch):
        chunk = boxes[i : i + batch]
        x = np.stack([_input_tile(padded, box) for box in chunk])
        out = session.run(None, {input_name: x})[0][:, 0]
        for box, tile_prob in zip(chunk, out, strict=True):
            sel = roi_ext[box]
            prob_ext[box][sel] = tile_prob[sel]
        if progress is not None:
            progress(min(i + batch, len(boxes)), len(boxes))
    # dense and patch-wise tiles are disjoint, and each leaves zeros outside its own voxels
    prob += prob_ext[: roi.shape[0], : roi.shape[1], : roi.shape[2]]
    return prob
