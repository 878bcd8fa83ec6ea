"""Radiological axial views of any acquisition grid: the lesion is where the patient has it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mslesion.services.imaging.axial import MAX_IN_PLANE_PX, axial_grid, radiological_axial
from tests.services.imaging.scenes import LESION_LPS, TILTED_16, centred_grid, head_scene


def _rotation_about_x(degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    return np.array([[1.0, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])


def _cases() -> dict[str, tuple[np.ndarray, tuple[int, int, int]]]:
    lean = math.tan(math.radians(20))
    sheared = np.column_stack([[2.0 * lean, 0, 2.0], [0, 2.0, 0], [2.0, 0, 0]])
    return {
        # columns: steps of (frame, row, column) in LPS mm
        "axial": (np.column_stack([[0, 0, 2.0], [0, 2.0, 0], [2.0, 0, 0]]), (90, 100, 90)),
        "issue_tilted_16": (TILTED_16[:3, :3], (60, 250, 250)),
        "sagittal": (np.column_stack([[-2.0, 0, 0], [0, 0, -2.0], [0, 2.0, 0]]), (80, 90, 100)),
        "coronal": (np.column_stack([[0, 2.0, 0], [0, 0, -2.0], [2.0, 0, 0]]), (100, 90, 80)),
        # RAS-ordered: columns towards the right, rows towards anterior, slices downwards
        "flipped": (np.column_stack([[0, 0, -2.0], [0, -2.0, 0], [-2.0, 0, 0]]), (90, 100, 90)),
        "tilted_roll_20": (
            _rotation_about_x(20) @ np.column_stack([[0, 0, 2.0], [0, 2.0, 0], [2.0, 0, 0]]),
            (100, 100, 90),
        ),
        "sheared_20": (sheared, (90, 100, 130)),
    }


@pytest.mark.parametrize("name", list(_cases()))
def test_the_lesion_lands_where_the_patient_has_it(name: str) -> None:
    columns, shape = _cases()[name]
    affine = centred_grid(np.asarray(columns, dtype=np.float64), shape)
    image, lesion = head_scene(affine, shape)
    view = radiological_axial(image, lesion, affine)
    slices, rows, cols = np.nonzero(view.mask)
    assert slices.size > 0
    # Radiological convention: patient's right on the image's left, anterior at the top,
    # slices from inferior to superior.
    assert cols.mean() < view.mask.shape[2] / 2
    assert rows.mean() < view.mask.shape[1] / 2
    assert slices.mean() > view.mask.shape[0] / 2
    centre_index = np.array([cols.mean(), rows.mean(), slices.mean()])
    spacing = np.array([view.pixel_mm[1], view.pixel_mm[0], view.slice_mm])
    centre = np.array(view.origin_mm) + centre_index * spacing
    assert np.linalg.norm(centre - LESION_LPS) < 2.0
    # The image follows the mask: the lesion is the brightest thing in the head.
    assert view.image[view.mask].mean() > 250


def test_a_thick_tilted_stack_keeps_its_slice_spacing_and_fine_pixels() -> None:
    shape = (60, 250, 250)
    grid = axial_grid(centred_grid(TILTED_16[:3, :3], shape), shape)
    spacing = grid.GetSpacing()
    assert spacing[2] == pytest.approx(np.linalg.norm(TILTED_16[:3, 0]))  # about 3 mm
    assert spacing[0] == pytest.approx(np.linalg.norm(TILTED_16[:3, 2]))  # about 0.72 mm
    assert grid.GetDirection() == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def test_a_huge_field_of_view_is_coarsened_not_allocated() -> None:
    shape = (20, 2000, 2000)  # 0.2 mm pixels over 400 mm
    affine = centred_grid(np.column_stack([[0, 0, 5.0], [0, 0.2, 0], [0.2, 0, 0]]), shape)
    grid = axial_grid(affine, shape)
    assert max(grid.GetSize()[:2]) <= MAX_IN_PLANE_PX + 1
