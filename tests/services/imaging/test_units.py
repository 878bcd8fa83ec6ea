"""Tests of the voxel volume rule (services/imaging/units.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mslesion.services.errors import InputError
from mslesion.services.imaging.units import (
    voxel_volume_ml_from_affine,
    voxel_volume_ml_from_spacing,
)


def test_anisotropic_voxel_volume() -> None:
    affine = np.diag([0.5, 0.5, 2.0, 1.0])
    assert voxel_volume_ml_from_affine(affine) == pytest.approx(0.0005)
    assert voxel_volume_ml_from_spacing((0.5, 0.5, 2.0)) == pytest.approx(0.0005)


def test_flipped_axes_give_a_positive_volume() -> None:
    las = np.diag([-1.0, 1.0, 1.0, 1.0])
    assert voxel_volume_ml_from_affine(las) == pytest.approx(0.001)
    lps = np.diag([-0.5, -0.5, 2.0, 1.0])
    lps[:3, 3] = [90.0, 126.0, -72.0]  # the origin does not matter
    assert voxel_volume_ml_from_affine(lps) == pytest.approx(0.0005)


def test_rotation_keeps_the_volume_and_matches_the_spacings() -> None:
    angle = math.radians(30)
    oblique = np.eye(4)
    oblique[:2, :2] = [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
    oblique[:3, :3] = oblique[:3, :3] @ np.diag([0.5, 0.5, 3.0])
    assert voxel_volume_ml_from_affine(oblique) == pytest.approx(0.75 / 1000)
    assert voxel_volume_ml_from_spacing([0.5, 0.5, 3.0]) == pytest.approx(0.75 / 1000)


@pytest.mark.parametrize(
    "affine",
    [np.diag([1.0, 0.0, 1.0, 1.0]), np.diag([1.0, np.nan, 1.0, 1.0]), np.eye(3)],
    ids=["flat", "nan", "3x3"],
)
def test_degenerate_affine_is_refused(affine: np.ndarray) -> None:
    with pytest.raises(InputError, match=r"voxel volume|4x4"):
        voxel_volume_ml_from_affine(affine)


@pytest.mark.parametrize(
    "spacing",
    [(1.0, 0.0, 1.0), (1.0, -1.0, -1.0), (1.0, math.inf, 1.0), (1.0, 1.0)],
    ids=["zero", "negative", "infinite", "two"],
)
def test_bad_spacing_is_refused(spacing: tuple[float, ...]) -> None:
    with pytest.raises(InputError, match="spacing"):
        voxel_volume_ml_from_spacing(spacing)
