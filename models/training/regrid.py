"""Re-gridding augmentation: the interpolation every served scan goes through, in training.

Serving brings each study onto the model grid by a rigid transform and one cubic B-spline
interpolation (:mod:`mslesion.services.imaging.preprocess`). Unless the registration is the
identity, that interpolation low-passes the image by an amount that depends on where the
acquisition's samples fall on the model grid. The training scans of open-ms lie on the model
grid already and are never interpolated, and the nets learned to call lesions on that
sharpness: on one 1 mm scan, its inputs moved by half a voxel (one more B-spline
interpolation) lose 13-25 % of the lesion volume (issue 11). A synthetic copy re-gridded by a
small random rotation and a sub-voxel shift, with the serving interpolator, shows the nets the
inputs they are served.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from mslesion.services.imaging.preprocess import MIN_BRAIN_VALUE, MODEL_GRID_INTERPOLATOR

MAX_ROTATION_DEG = 3.0
"""Largest rotation: over 90 mm from the centre it moves samples by 4.7 voxels, so one copy
holds every sub-voxel offset, as a served scan registered at a few degrees does."""
MAX_SHIFT_VOXELS = 0.5


@dataclass(frozen=True)
class Regridded:
    """A subject's images, lesion mask and white-matter prior on the moved grid."""

    images: dict[str, np.ndarray]
    mask: np.ndarray
    wm_prior: np.ndarray | None


def random_rigid(
    shape: tuple[int, ...], rng: np.random.Generator, max_deg: float = MAX_ROTATION_DEG
) -> sitk.Euler3DTransform:
    """A rotation of at most ``max_deg`` about the grid centre, then a shift of < 1/2 voxel.

    The grid is taken as 1 mm isotropic with its origin at index 0 (training grids are).
    """
    transform = sitk.Euler3DTransform()
    transform.SetCenter(tuple(float((n - 1) / 2) for n in shape))
    angles = np.radians(rng.uniform(-max_deg, max_deg, 3))
    transform.SetRotation(*(float(a) for a in angles))
    shift = rng.uniform(-MAX_SHIFT_VOXELS, MAX_SHIFT_VOXELS, 3)
    transform.SetTranslation(tuple(float(s) for s in shift))
    return transform


def _resample(array: np.ndarray, transform: sitk.Transform, interpolator: int) -> np.ndarray:
    """``array`` (x, y, z) pulled through ``transform`` onto its own grid (float32)."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0), np.float32))
    moved = sitk.Resample(image, image, transform, interpolator, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(moved).transpose(2, 1, 0)


def regrid(
    images: Mapping[str, np.ndarray],
    brain: np.ndarray,
    mask: np.ndarray,
    wm_prior: np.ndarray | None,
    transform: sitk.Transform,
) -> Regridded:
    """Every image through ``transform`` with the serving interpolator; the masks and prior too.

    The anatomy moves as one: the brain and lesion masks are resampled linearly and kept where
    at least half a voxel is inside, the prior linearly. Outside the moved brain every image is
    exactly 0, inside at least the serving floor, as preprocessing leaves a served scan.
    """
    moved_brain = _resample(brain.astype(np.float32), transform, sitk.sitkLinear) >= 0.5
    out = {}
    for name, image in images.items():
        moved = np.maximum(_resample(image, transform, MODEL_GRID_INTERPOLATOR), MIN_BRAIN_VALUE)
        out[name] = np.where(moved_brain, moved, 0.0).astype(np.float32)
    lesions = _resample(mask.astype(np.float32), transform, sitk.sitkLinear) >= 0.5
    prior = None
    if wm_prior is not None:
        prior = np.clip(_resample(wm_prior, transform, sitk.sitkLinear), 0.0, 1.0)
    return Regridded(out, lesions & moved_brain, prior)
