"""Any acquisition grid to radiological axial views, by resampling.

A volume and its lesion mask are resampled (never just transposed) onto an axial grid
aligned with the patient axes that covers the volume's physical extent. Its index
(slice, row, column) grows towards superior, posterior and the patient's left, so a slice
drawn as an image has the patient's right on the viewer's left and anterior at the top
(radiological convention), slices running from inferior to superior. Axial, tilted,
sagittal, coronal, flipped and sheared acquisitions all come out the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from mslesion.services.imaging.geometry import (
    axes_and_spacing,
    image_on,
    nearest_patient_axes,
    physical_corners,
)

MAX_IN_PLANE_PX = 512
"""Pixels across the field of view at most: a display tile is 256 px, finer is wasted memory."""


@dataclass(frozen=True)
class AxialView:
    """A volume and its mask on a radiological axial grid, with the in-plane pixel size."""

    image: np.ndarray  # float32 (slice, row, column): inferior→superior, anterior→posterior, R→L
    mask: np.ndarray  # bool, same grid
    pixel_mm: tuple[float, float]  # (row, column) spacing
    slice_mm: float
    origin_mm: tuple[float, float, float]  # LPS point of voxel (0, 0, 0)


def axial_grid(affine: np.ndarray, shape: tuple[int, int, int]) -> sitk.Image:
    """Empty LPS-aligned grid over the physical extent of a grid of ``shape``.

    Each patient axis takes the spacing of the grid axis nearest to it (normalised cosines),
    so a 3 mm slice stack gives 3 mm axial slices and a sagittal 3D scan 1 mm ones; the
    in-plane pixels are coarsened only when the field of view would exceed
    :data:`MAX_IN_PLANE_PX`.
    """
    corners = physical_corners(affine, shape)
    low, high = corners.min(axis=0), corners.max(axis=0)
    extent = high - low
    _, grid_spacing = axes_and_spacing(affine)
    nearest = nearest_patient_axes(affine)
    spacing = np.array([grid_spacing[axis] for axis in nearest.grid_axis])
    spacing[:2] = np.maximum(spacing[:2], extent[:2] / MAX_IN_PLANE_PX)
    size = np.floor(extent / spacing + 1e-6).astype(int) + 1
    grid = sitk.Image([int(n) for n in size], sitk.sitkUInt8)
    grid.SetSpacing(tuple(float(s) for s in spacing))
    grid.SetOrigin(tuple(float(v) for v in low))
    return grid  # identity direction: index grows along +L, +P, +S


def radiological_axial(image: np.ndarray, mask: np.ndarray, affine: np.ndarray) -> AxialView:
    """``image`` and ``mask`` (frame, row, column; patient affine ``affine``) as axial views.

    The image is interpolated linearly, the mask by nearest neighbour (a lesion stays a set
    of whole voxels, outlined where it is); points outside the acquisition are 0.
    """
    shape = (int(image.shape[0]), int(image.shape[1]), int(image.shape[2]))
    grid = axial_grid(affine, shape)
    source = image_on(image.astype(np.float32, copy=False), affine)
    lesions = image_on(mask.astype(np.uint8), affine)
    identity = sitk.Transform()
    on_grid = sitk.Resample(source, grid, identity, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    mask_on_grid = sitk.Resample(
        lesions, grid, identity, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8
    )
    spacing, origin = grid.GetSpacing(), grid.GetOrigin()
    return AxialView(
        image=sitk.GetArrayFromImage(on_grid),
        mask=sitk.GetArrayFromImage(mask_on_grid) > 0,
        pixel_mm=(float(spacing[1]), float(spacing[0])),
        slice_mm=float(spacing[2]),
        origin_mm=(float(origin[0]), float(origin[1]), float(origin[2])),
    )
