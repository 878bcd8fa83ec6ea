"""The one geometry model: voxel grids in DICOM patient coordinates (LPS, millimetres).

Every volume the pipeline holds is an array indexed (frame, row, column). Its grid is a 4×4
*patient affine* from that index to a point in patient LPS: each of the first three columns
is the step from one frame, row or column to the next, i.e. a direction cosine times a
spacing. SimpleITK stores the same grid with its axes in the other order (column, row,
frame); :func:`affine_of` and :func:`image_on` convert between the two, so orientation and
spacing have this one home.

Rules every stage relies on:

- Orientation questions (which patient axis does a grid axis run along?) are answered on
  *normalised* direction cosines, never on the scaled columns: a 3 mm slice step tilted by
  16° has a 0.83 mm component along y, larger than a 0.72 mm pixel's 0.69 mm, and must not
  win the y axis for that reason (:func:`nearest_patient_axes`).
- A slice stack is a straight line of slice positions with a regular gap along the normal.
  The line may lean within the slice plane (a *sheared* stack, as a CT gantry tilt makes)
  up to :data:`MAX_SHEAR_DEG`; its grid then has a slice axis that is not the normal, and
  every stage works in physical space, so nothing else changes. :func:`fit_slice_line` is
  the one fit and the tolerances here the one set of bounds: the DICOM reader accepts a
  stack with them and the SEG writer checks it with them, so no later stage can refuse a
  stack that an earlier one accepted.
- A voxel's volume is ``|det|`` of the affine's 3×3 part (see :mod:`.units`): right for
  rotated, flipped and sheared grids alike (:func:`voxel_volume_ml`).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from mslesion.services.errors import InputError
from mslesion.services.imaging.units import voxel_volume_ml_from_affine

# Slice-stack tolerances. DICOM positions are decimal strings of at most 16 characters, so
# real series carry rounding noise of ~1e-4 mm; these bounds sit well above that and well
# below any real error (a moved or missing slice is at least ~0.5 mm off).
GAP_RTOL = 0.01
"""Relative tolerance on the gap between slices along the normal."""
GAP_ATOL_MM = 0.01
"""Absolute floor of the gap tolerance (thin slices)."""
OFF_LINE_ATOL_MM = 0.05
"""How far, within its plane, a slice may lie from the straight line through the stack."""
MAX_SHEAR_DEG = 30.0
"""Largest lean of the slice line from the normal; CT gantry tilts stay within ±30°, and an
MR series never leans at all, so a larger lean is taken for corrupt positions, not a grid."""

PATIENT_AXES = "LPS"


def gap_tolerance(nominal_mm: float) -> float:
    """Largest deviation of one gap from the nominal gap (mm) that a regular stack may show."""
    return max(GAP_ATOL_MM, GAP_RTOL * abs(nominal_mm))


@dataclass(frozen=True)
class SliceLine:
    """Slice positions fitted by a straight line, in the order they were given.

    ``distances`` are the positions along the normal; ``step`` is the mean vector from one
    slice to the next (it leans from the normal by ``shear_deg``); ``off_line_mm`` is how far
    each slice lies from the line, within the slice plane.
    """

    distances: np.ndarray
    step: np.ndarray
    off_line_mm: np.ndarray
    shear_deg: float

    @property
    def gaps(self) -> np.ndarray:
        """Distances along the normal between consecutive slices (mm, signed)."""
        return np.diff(self.distances)


def fit_slice_line(positions: np.ndarray, normal: np.ndarray) -> SliceLine:
    """Fit the slice positions (n×3, n ≥ 2, in stack order) with a straight line.

    The in-plane part of each position is fitted as a linear function of its distance
    along ``normal`` (least squares): its slope is the shear, its residual the off-line
    distance. Regular gaps are not checked here; see :func:`gap_tolerance`.
    """
    points = np.asarray(positions, dtype=np.float64)
    unit = np.asarray(normal, dtype=np.float64) / np.linalg.norm(normal)
    distances = points @ unit
    in_plane = points - np.outer(distances, unit)
    relative = distances - distances.mean()
    spread = float(relative @ relative)
    slope = (relative @ (in_plane - in_plane.mean(axis=0))) / spread if spread > 0 else np.zeros(3)
    fitted = in_plane.mean(axis=0) + np.outer(relative, slope)
    off_line = np.linalg.norm(in_plane - fitted, axis=1)
    span = distances[-1] - distances[0]
    step = (span * (unit + slope)) / (len(points) - 1)
    shear = math.degrees(math.atan(float(np.linalg.norm(slope))))
    return SliceLine(distances, step, off_line, shear)


def straight_step(line: SliceLine, normal: np.ndarray) -> np.ndarray:
    """The step of ``line``, with a shear too small to matter over the stack set to zero.

    A lean that moves the last slice by less than :data:`OFF_LINE_ATOL_MM` is rounding
    noise of the positions: the grid then keeps the exact normal as its slice axis.
    """
    unit = np.asarray(normal, dtype=np.float64) / np.linalg.norm(normal)
    along = float(line.step @ unit)
    lean = line.step - along * unit
    if np.linalg.norm(lean) * (len(line.distances) - 1) <= OFF_LINE_ATOL_MM:
        return along * unit
    return line.step


def affine_of(image: sitk.Image) -> np.ndarray:
    """Patient affine of a SimpleITK volume: index (frame, row, column) → LPS mm."""
    direction = np.array(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    scaled = direction * np.array(image.GetSpacing(), dtype=np.float64)
    affine = np.eye(4)
    affine[:3, :3] = scaled[:, ::-1]  # ITK's (x, y, z) = (column, row, frame)
    affine[:3, 3] = image.GetOrigin()
    return affine


def image_on(array: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """A SimpleITK volume of ``array`` (frame, row, column) on the grid of ``affine``.

    Raises:
        InputError: when the array is not 3D or the affine is not a valid 4×4 grid.
    """
    if array.ndim != 3:
        raise InputError(f"a volume must be 3D (frame, row, column), got shape {array.shape}")
    directions, spacing = axes_and_spacing(affine)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing(tuple(float(s) for s in spacing[::-1]))
    image.SetDirection(tuple(float(v) for v in directions[:, ::-1].ravel()))
    image.SetOrigin(tuple(float(v) for v in np.asarray(affine)[:3, 3]))
    return image


def axes_and_spacing(affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit direction of each grid axis as columns, 3×3; spacing of each axis in mm).

    Raises:
        InputError: when the affine is not 4×4 and finite, or an axis has no length or the
            axes do not span 3D space.
    """
    matrix = np.asarray(affine, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.isfinite(matrix).all():
        raise InputError(f"a grid needs a finite 4x4 affine, got {matrix.tolist()}")
    spacing = np.linalg.norm(matrix[:3, :3], axis=0)
    if not (spacing > 0).all():
        raise InputError(f"grid axis without length in affine {matrix.tolist()}")
    directions = matrix[:3, :3] / spacing
    if abs(np.linalg.det(directions)) < 1e-3:
        raise InputError(f"grid axes do not span 3D space: {directions.tolist()}")
    return directions, spacing


@dataclass(frozen=True)
class PatientAxes:
    """Which grid axis runs nearest to each patient axis (L, P, S) and in which sense."""

    grid_axis: tuple[int, int, int]  # for L, P, S: the grid axis (0 frame, 1 row, 2 column)
    sign: tuple[int, int, int]  # +1 when the index grows towards L, P or S respectively
    cosine: tuple[float, float, float]  # |cos| of the angle between the two

    def code(self) -> str:
        """Orientation code of the grid axes (frame, row, column), e.g. "SPL" or "LIP"."""
        opposite = {"L": "R", "P": "A", "S": "I"}
        letters = ["?", "?", "?"]
        for lps, (axis, sign) in enumerate(zip(self.grid_axis, self.sign, strict=True)):
            letter = PATIENT_AXES[lps]
            letters[axis] = letter if sign > 0 else opposite[letter]
        return "".join(letters)


def nearest_patient_axes(affine: np.ndarray) -> PatientAxes:
    """The one-to-one pairing of grid axes with patient axes that aligns them best.

    Judged on normalised direction cosines, over all six pairings (the best total |cos|), so
    every oblique grid gets a complete, unambiguous answer; a greedy per-axis argmax can
    give two patient axes the same grid axis.
    """
    directions, _ = axes_and_spacing(affine)
    cosines = np.abs(directions)  # [lps, grid axis]
    best = max(
        itertools.permutations(range(3)),
        key=lambda pick: sum(cosines[lps, axis] for lps, axis in enumerate(pick)),
    )
    signs = tuple(1 if directions[lps, axis] > 0 else -1 for lps, axis in enumerate(best))
    cos = tuple(float(cosines[lps, axis]) for lps, axis in enumerate(best))
    return PatientAxes(
        grid_axis=(best[0], best[1], best[2]),
        sign=(signs[0], signs[1], signs[2]),
        cosine=(cos[0], cos[1], cos[2]),
    )


def voxel_volume_ml(image: sitk.Image) -> float:
    """Volume of one voxel of ``image`` in ml, from its full grid (rotation, shear, flips)."""
    return voxel_volume_ml_from_affine(affine_of(image))


def physical_corners(affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The 8 corner voxel centres of a grid of ``shape`` (frame, row, column), LPS mm (8×3)."""
    matrix = np.asarray(affine, dtype=np.float64)
    corners = np.array(list(itertools.product(*[(0, n - 1) for n in shape])), dtype=np.float64)
    return np.asarray(corners @ matrix[:3, :3].T + matrix[:3, 3])
