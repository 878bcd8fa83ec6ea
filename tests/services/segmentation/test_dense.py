"""Dense tiled ONNX inference equals the patch-wise reference (the seed method's way)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mslesion.services.config import DEFAULT_MODEL_NAME, SHIPPED_MODELS_DIR, Provider
from mslesion.services.segmentation.dense import dense_predict, roi_tiles, split_sparse_tiles
from mslesion.services.segmentation.manifest import NetRole, load_manifest
from mslesion.services.segmentation.patchwise import patchwise_predict
from mslesion.services.segmentation.runtime import create_session
from tests.model_factory import random_model

TOLERANCE = 1e-4
N_SAMPLES = 10_000


def _volume(shape: tuple[int, int, int], channels: int, seed: int) -> np.ndarray:
    """Smooth-ish random stack with a zero background margin, like a skull-stripped scan."""
    rng = np.random.default_rng(seed)
    stack = rng.normal(size=(channels, *shape)).astype(np.float32)
    stack[:, :2] = 0  # background touching one border, brain touching the others
    return stack


def _sample_voxels(shape: tuple[int, ...], n: int, seed: int) -> np.ndarray:
    """``n`` voxels: every corner and many face voxels (borders), the rest random."""
    rng = np.random.default_rng(seed)
    corners = np.array(
        [[x, y, z] for x in (0, shape[0] - 1) for y in (0, shape[1] - 1) for z in (0, shape[2] - 1)]
    )
    faces = rng.integers(0, shape, size=(n // 2, 3))
    axis = rng.integers(0, 3, size=n // 2)
    faces[np.arange(n // 2), axis] = np.where(
        rng.random(n // 2) < 0.5, 0, np.array(shape)[axis] - 1
    )
    inner = rng.integers(0, shape, size=(n - len(faces) - len(corners), 3))
    return np.concatenate([corners, faces, inner])


def _compare(folder: Path, stack: np.ndarray, tile: int, seed: int) -> float:
    manifest = load_manifest(folder)
    worst = 0.0
    voxels = _sample_voxels(stack.shape[1:], N_SAMPLES, seed)
    roi = np.ones(stack.shape[1:], dtype=bool)
    for dense_role, patch_role in (
        (NetRole.NET1_DENSE, NetRole.NET1_PATCH),
        (NetRole.NET2_DENSE, NetRole.NET2_PATCH),
    ):
        dense = create_session(manifest.file_path(folder, dense_role), Provider.CPU)
        patch = create_session(manifest.file_path(folder, patch_role), Provider.CPU)
        volume = dense_predict(dense, stack, roi, tile=tile, batch=2)
        reference = patchwise_predict(patch, stack, voxels)
        got = volume[voxels[:, 0], voxels[:, 1], voxels[:, 2]]
        worst = max(worst, float(np.max(np.abs(got - reference))))
        assert reference.std() > 1e-3, "probabilities must vary for the comparison to mean much"
    return worst


@pytest.mark.parametrize("tile", [7, 16])
def test_dense_equals_patchwise_random_weights(tmp_path: Path, tile: int) -> None:
    folder = random_model(tmp_path / "model", seed=tile)
    stack = _volume((23, 30, 19), 2, seed=tile)
    assert _compare(folder, stack, tile, seed=tile) <= TOLERANCE


def test_dense_equals_patchwise_shipped_model() -> None:
    folder = SHIPPED_MODELS_DIR / DEFAULT_MODEL_NAME
    manifest = load_manifest(folder)
    stack = _volume((26, 29, 24), manifest.channels, seed=11)
    assert _compare(folder, stack, tile=12, seed=3) <= TOLERANCE


def test_sparse_tiles_scored_patchwise_give_the_same_result(tmp_path: Path) -> None:
    folder = random_model(tmp_path / "model", seed=5)
    manifest = load_manifest(folder)
    dense_s = create_session(manifest.file_path(folder, NetRole.NET1_DENSE), Provider.CPU)
    patch_s = create_session(manifest.file_path(folder, NetRole.NET1_PATCH), Provider.CPU)
    stack = _volume((30, 30, 30), 2, seed=5)
    roi = np.zeros((30, 30, 30), dtype=bool)
    roi[0:10, 0:10, 0:10] = True  # one full tile: dense
    roi[25, 3, 20] = roi[29, 29, 29] = True  # sparse tiles: patch-wise
    pure = dense_predict(dense_s, stack, roi, tile=10)
    mixed = dense_predict(dense_s, stack, roi, tile=10, patch_session=patch_s, patch_cost=30)
    boxes, voxels = split_sparse_tiles(roi, roi_tiles(roi, 10), 10, 30)
    assert len(boxes) == 1 and len(voxels) == 2
    assert np.max(np.abs(pure - mixed)) <= TOLERANCE
    assert np.all(mixed[~roi] == 0) and np.all(mixed[roi] > 0)


def test_dense_scores_only_roi_voxels(tmp_path: Path) -> None:
    folder = random_model(tmp_path / "model")
    session = create_session(
        load_manifest(folder).file_path(folder, NetRole.NET1_DENSE), Provider.CPU
    )
    stack = _volume((20, 20, 20), 2, seed=1)
    roi = np.zeros((20, 20, 20), dtype=bool)
    roi[5:9, 3:4, 10:18] = True
    prob = dense_predict(session, stack, roi, tile=8)
    assert np.all(prob[~roi] == 0)
    assert np.all(prob[roi] > 0)


def test_tiles_skip_empty_regions() -> None:
    roi = np.zeros((64, 64, 64), dtype=bool)
    roi[0, 0, 0] = roi[63, 63, 63] = True
    boxes = roi_tiles(roi, 16)
    assert len(boxes) == 2
    assert all(b.stop - b.start == 16 for box in boxes for b in box)
    assert roi_tiles(np.zeros((5, 5, 5), dtype=bool), 4) == []
