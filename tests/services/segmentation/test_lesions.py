"""Tests of the one definition of a lesion (services/segmentation/lesions.py)."""

from __future__ import annotations

import numpy as np
import pytest

from mslesion.services.segmentation.lesions import LESION_CONNECTIVITY, label_lesions


def _empty() -> np.ndarray:
    return np.zeros((6, 6, 6), dtype=np.uint8)


def test_connectivity_is_the_full_3x3x3_neighbourhood() -> None:
    assert LESION_CONNECTIVITY.shape == (3, 3, 3)
    assert LESION_CONNECTIVITY.dtype == np.bool_ and LESION_CONNECTIVITY.all()
    assert not LESION_CONNECTIVITY.flags.writeable


@pytest.mark.parametrize(
    "offset",
    [(0, 0, 1), (0, 1, 1), (1, 1, 1)],
    ids=["face", "edge", "corner"],
)
def test_touching_voxels_are_one_lesion(offset: tuple[int, int, int]) -> None:
    mask = _empty()
    mask[2, 2, 2] = 1
    mask[2 + offset[0], 2 + offset[1], 2 + offset[2]] = 1
    labels, n = label_lesions(mask)
    assert n == 1
    assert labels[2, 2, 2] == labels[tuple(2 + o for o in offset)] == 1


@pytest.mark.parametrize("offset", [(0, 0, 2), (2, 2, 2), (0, 1, 2)])
def test_voxels_one_gap_apart_are_two_lesions(offset: tuple[int, int, int]) -> None:
    mask = _empty()
    mask[1, 1, 1] = 1
    mask[1 + offset[0], 1 + offset[1], 1 + offset[2]] = 1
    labels, n = label_lesions(mask)
    assert n == 2
    assert sorted(np.unique(labels).tolist()) == [0, 1, 2]


def test_lesion_voxels_are_those_above_zero() -> None:
    values = np.zeros((4, 4, 4), dtype=np.float32)
    values[0, 0, 0] = 0.5
    values[3, 3, 3] = -1.0  # negative: background
    values[0, 3, 0] = np.nan  # NaN: background
    labels, n = label_lesions(values)
    assert n == 1
    assert labels.dtype == np.int32 and labels.shape == values.shape
    assert int(np.count_nonzero(labels)) == 1


def test_empty_mask_has_no_lesion() -> None:
    labels, n = label_lesions(np.zeros((3, 4, 5), dtype=bool))
    assert n == 0 and not labels.any()


def test_mask_must_be_3d() -> None:
    with pytest.raises(ValueError, match="3-D"):
        label_lesions(np.ones((4, 4), dtype=bool))
