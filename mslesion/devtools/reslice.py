"""Re-slice a head onto the grid a site would acquire: plane, tilt, pixels, slices, shear.

Re-slicing moves no anatomy. The head stays where it is in patient space (LPS); only the
sampling grid changes, as if the same head had been scanned with another prescription. So
the pipeline should give the same answer on every re-slicing of one scan, up to what the
sampling itself loses.

Slices have a thickness: a thick slice is the mean of thin sub-slices across it (a boxcar
slice profile), not one thin plane through its centre, so partial-volume effects look like a
real 2D acquisition's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np
import SimpleITK as sitk

Plane = Literal["axial", "sagittal", "coronal"]

# Row direction (along a row, column index grows) and column direction (down a column, row
# index grows) of each plane in LPS, as scanners write them; the normal is row × column.
PLANE_AXES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),  # normal +S
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),  # normal +R
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),  # normal +P
}
SUBSLICE_MM = 1.0
"""Thin sub-slices a thick slice is averaged from are at most this far apart."""
MARGIN_MM = 4.0
"""Air kept around the head on every side of the grid."""
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _rotation(axis: np.ndarray, degrees: float) -> np.ndarray:
    """Rotation matrix about unit ``axis`` (Rodrigues)."""
    angle = math.radians(degrees)
    k = axis / np.linalg.norm(axis)
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross


@dataclass(frozen=True)
class Acquisition:
    """An acquisition grid as a site prescribes it.

    ``pixel_mm``: (between columns, between rows). ``slice_mm``: gap between slice centres
    along the normal, and the slice thickness. ``tilt_deg``: rotations about the plane's row
    direction, then about its column direction (for an axial plane: about left-right, the
    AC-PC angulation, then about anterior-posterior). ``flip``: reverse the column index, the
    row index, the slice order (slices stored against row × column, as an RAS-ordered
    export does). ``shear_deg``: slice positions lean along the row direction by this angle
    from the normal (a sheared stack, as a gantry tilt gives).
    """

    plane: Plane = "axial"
    pixel_mm: tuple[float, float] = (1.0, 1.0)
    slice_mm: float = 1.0
    tilt_deg: tuple[float, float] = (0.0, 0.0)
    flip: tuple[bool, bool, bool] = (False, False, False)
    shear_deg: float = 0.0

    def in_plane_axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row direction, column direction, normal) in LPS after the tilts, unflipped."""
        row, column = (np.array(v) for v in PLANE_AXES[self.plane])
        turn = _rotation(column, self.tilt_deg[1]) @ _rotation(row, self.tilt_deg[0])
        row, column = turn @ row, turn @ column
        return row, column, np.cross(row, column)

    def axes(self) -> np.ndarray:
        """3×3 matrix whose columns are the index steps (column, row, slice) in LPS mm."""
        row, column, normal = self.in_plane_axes()
        lean = math.tan(math.radians(self.shear_deg))
        steps = [row * self.pixel_mm[0], column * self.pixel_mm[1]]
        steps.append((normal + lean * row) * self.slice_mm)
        signs = [-1.0 if f else 1.0 for f in self.flip]
        return np.column_stack([s * v for s, v in zip(signs, steps, strict=True)])

    def is_3d(self) -> bool:
        """Thin enough to be a 3D acquisition (what the DICOM writer calls 3D)."""
        return self.slice_mm <= 1.5


def head_box(image: sitk.Image) -> np.ndarray:
    """Physical corners (8×3, LPS) of the box around the non-zero voxels of ``image``."""
    nonzero = np.argwhere(sitk.GetArrayViewFromImage(image) != 0)
    if nonzero.size == 0:
        raise ValueError("the image is empty: no head to re-slice")
    low, high = nonzero.min(axis=0)[::-1], nonzero.max(axis=0)[::-1]  # (x, y, z) index
    corners = [
        (float(x), float(y), float(z))
        for x in (low[0], high[0])
        for y in (low[1], high[1])
        for z in (low[2], high[2])
    ]
    return np.array([image.TransformContinuousIndexToPhysicalPoint(c) for c in corners])


def acquisition_grid(image: sitk.Image, acquisition: Acquisition) -> sitk.Image:
    """Empty grid of ``acquisition`` that covers the head of ``image`` with a margin.

    The grid is centred on a voxel centre of ``image``, so an untilted re-slicing at the
    source's spacing samples the source's own voxel centres (no interpolation at all).
    """
    box = head_box(image)
    centre_index = np.round(image.TransformPhysicalPointToContinuousIndex(box.mean(axis=0)))
    centre = np.array(image.TransformContinuousIndexToPhysicalPoint(centre_index.tolist()))
    steps = acquisition.axes()
    index = np.linalg.solve(steps, (box - centre).T).T
    margin = MARGIN_MM / np.linalg.norm(steps, axis=0)
    low = np.floor(index.min(axis=0) - margin)
    high = np.ceil(index.max(axis=0) + margin)
    spacing = np.linalg.norm(steps, axis=0)
    grid = sitk.Image([int(n) for n in high - low + 1], sitk.sitkFloat32)
    grid.SetSpacing(tuple(float(s) for s in spacing))
    grid.SetDirection(tuple(float(v) for v in (steps / spacing).ravel()))
    grid.SetOrigin(tuple(float(v) for v in centre + steps @ low))
    return grid


def reslice(
    image: sitk.Image,
    grid: sitk.Image,
    slice_mm: float,
    normal: np.ndarray,
    *,
    fraction: bool = False,
) -> sitk.Image:
    """``image`` on ``grid`` (float32), each slice the mean across its thickness.

    A slice ``slice_mm`` thick is the mean of sub-slices at most :data:`SUBSLICE_MM` apart,
    offset along ``normal`` (unit, LPS) about its centre. Images are sampled with a cubic
    B-spline, clipped at 0: a scanner acquiring on ``grid`` samples the anatomy there, and a
    linear interpolation would add a blur no acquisition has. ``fraction``: the image is a
    0/1 mask, sampled linearly, so each voxel gets the fraction of it that is inside.
    """
    interpolator = sitk.sitkLinear if fraction else sitk.sitkBSpline5
    parts = max(1, math.ceil(slice_mm / SUBSLICE_MM - 1e-9))
    offsets = (np.arange(parts) - (parts - 1) / 2.0) * slice_mm / parts
    total = np.zeros(sitk.GetArrayViewFromImage(grid).shape)
    for offset in offsets:
        shifted = sitk.TranslationTransform(3, tuple(float(v) for v in offset * normal))
        sampled = sitk.Resample(image, grid, shifted, interpolator, 0.0, sitk.sitkFloat32)
        total += sitk.GetArrayFromImage(sampled)
    out = sitk.GetImageFromArray(np.maximum(total / parts, 0.0).astype(np.float32))
    out.CopyInformation(grid)
    return out


def write_nifti(image: sitk.Image, path: Path) -> Path:
    """Write ``image`` as NIfTI with its exact grid (RAS affine in the sform, shear included)."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = direction * np.array(image.GetSpacing())
    affine[:3, 3] = image.GetOrigin()
    data = np.transpose(sitk.GetArrayFromImage(image), (2, 1, 0))  # (z, y, x) -> (i, j, k)
    nifti = nib.Nifti1Image(data, RAS_TO_LPS @ affine)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nifti, str(path))
    return path
