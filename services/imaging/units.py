"""The volume of one voxel, in millilitres: the one place that turns grid geometry into ml.

The rule: a voxel is the parallelepiped spanned by the columns of the linear (3x3) part of
its voxel-to-mm affine, so its volume is ``|det(affine[:3, :3])|`` mm^3; rotations and axis
flips do not change it. On an axis-aligned grid that is the product of the voxel spacings.
1 ml = 1 cm^3 = 1000 mm^3. Every lesion, brain and minimum-lesion-size volume in ml is a
voxel count times this number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from mslesion.services.errors import InputError

MM3_PER_ML: Final = 1000.0
"""Cubic millimetres in one millilitre."""


def voxel_volume_ml_from_affine(affine: npt.ArrayLike) -> float:
    """Volume of one voxel in ml from a 4x4 voxel-to-mm affine: ``|det(A[:3, :3])| / 1000``.

    The absolute value makes flipped (left-handed) grids, e.g. LAS or DICOM LPS index
    orders, as large as their right-handed mirror image.

    Raises:
        InputError: when the affine is not 4x4 or gives a voxel volume that is zero or not
            finite.
    """
    matrix = np.asarray(affine, dtype=np.float64)
    if matrix.shape != (4, 4):
        raise InputError(f"affine must be 4x4, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise InputError(f"affine has non-finite entries, so no voxel volume: {matrix.tolist()}")
    return _checked(abs(float(np.linalg.det(matrix[:3, :3]))) / MM3_PER_ML, matrix.tolist())


def voxel_volume_ml_from_spacing(spacing: Sequence[float]) -> float:
    """Volume of one voxel in ml from its three edge lengths in mm: ``prod(spacing) / 1000``.

    For axis-aligned or rotated grids given as spacings (SimpleITK ``GetSpacing()``, a model
    manifest's ``spacing_mm``); equal to :func:`voxel_volume_ml_from_affine` of their affine.

    Raises:
        InputError: when there are not three spacings or one is not a positive finite number.
    """
    edges = [float(s) for s in spacing]
    if len(edges) != 3 or not all(math.isfinite(e) and e > 0.0 for e in edges):
        raise InputError(f"voxel spacing must be 3 positive lengths in mm, got {edges}")
    return _checked(math.prod(edges) / MM3_PER_ML, edges)


def _checked(volume_ml: float, source: object) -> float:
    if not math.isfinite(volume_ml) or volume_ml <= 0.0:
        raise InputError(f"voxel volume of {volume_ml} ml from {source}: a voxel has no size")
    return volume_ml
