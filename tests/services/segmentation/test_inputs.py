"""Bad inputs get clear errors; normalisation is the documented z-score over the brain."""

from __future__ import annotations

import numpy as np
import pytest

from mslesion.services.errors import InputError
from mslesion.services.segmentation.inputs import candidate_mask, prepare_stack

MODALITIES = ["flair", "t1"]


def _images(shape: tuple[int, int, int] = (20, 20, 20)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    brain = np.zeros(shape, dtype=bool)
    brain[3:-3, 3:-3, 3:-3] = True
    return {
        m: np.where(brain, rng.uniform(100, 500, shape), 0).astype(np.float32) for m in MODALITIES
    }


def test_zscore_over_brain_background_zero() -> None:
    stack, brain = prepare_stack(_images(), MODALITIES)
    assert stack.shape == (2, 20, 20, 20) and stack.dtype == np.float32
    for c in range(2):
        assert abs(float(stack[c][brain].mean())) < 1e-4
        assert abs(float(stack[c][brain].std()) - 1) < 1e-3
        assert np.all(stack[c][~brain] == 0)


def test_channel_order_follows_modalities_case_insensitive() -> None:
    images = _images()
    images = {"T1": images["t1"] * 2, "FLAIR": images["flair"]}
    stack, _brain = prepare_stack(images, ["flair", "t1"])
    expected, _ = prepare_stack({"flair": images["FLAIR"], "t1": images["T1"]}, MODALITIES)
    np.testing.assert_array_equal(stack, expected)


def test_wrong_channel_count() -> None:
    images = _images()
    images["t2"] = images["t1"]
    with pytest.raises(
        InputError, match=r"takes 2 channels \(flair, t1\) but got 3.*unexpected: t2"
    ):
        prepare_stack(images, MODALITIES)
    with pytest.raises(InputError, match="missing: t1"):
        prepare_stack({"flair": images["flair"]}, MODALITIES)


def test_mismatched_grids() -> None:
    images = _images()
    images["t1"] = images["t1"][:, :, :-1]
    with pytest.raises(InputError, match="different grids"):
        prepare_stack(images, MODALITIES)


def test_nan_is_refused() -> None:
    images = _images()
    images["t1"][10, 10, 10] = np.nan
    images["t1"][10, 10, 11] = np.inf
    with pytest.raises(InputError, match="t1 contains 2 NaN or infinite voxels"):
        prepare_stack(images, MODALITIES)


def test_empty_brain() -> None:
    images = {m: np.zeros((20, 20, 20), np.float32) for m in MODALITIES}
    with pytest.raises(InputError, match="empty brain"):
        prepare_stack(images, MODALITIES)


def test_constant_brain() -> None:
    images = _images()
    images["t1"] = (images["t1"] > 0).astype(np.float32) * 7
    with pytest.raises(InputError, match="t1 is constant inside the brain"):
        prepare_stack(images, MODALITIES)


def test_not_3d() -> None:
    images = {m: np.ones((20, 20), np.float32) for m in MODALITIES}
    with pytest.raises(InputError, match="3D volume"):
        prepare_stack(images, MODALITIES)


def test_candidates_are_bright_flair_inside_brain() -> None:
    stack, brain = prepare_stack(_images(), MODALITIES)
    cand = candidate_mask(stack, brain, 0.5)
    assert cand.any() and np.all(stack[0][cand] > 0.5) and not np.any(cand & ~brain)
