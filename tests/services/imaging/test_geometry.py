"""The one geometry model: patient affines, nearest patient axes, slice lines, voxel volumes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk

from mslesion.services.errors import InputError
from mslesion.services.imaging.geometry import (
    MAX_SHEAR_DEG,
    OFF_LINE_ATOL_MM,
    affine_of,
    axes_and_spacing,
    fit_slice_line,
    image_on,
    nearest_patient_axes,
    straight_step,
    voxel_volume_ml,
)
from tests.services.imaging.scenes import TILTED_16


def test_the_tilted_study_pairs_its_slice_axis_with_superior_not_posterior() -> None:
    # Scaled columns would give P to the 3 mm slice axis (0.822 > 0.691); cosines do not.
    axes = nearest_patient_axes(TILTED_16)
    assert axes.grid_axis == (2, 1, 0)  # L: column, P: row, S: frame
    assert axes.sign == (1, 1, 1)
    assert axes.code() == "SPL"
    assert min(axes.cosine) > math.cos(math.radians(20))


@pytest.mark.parametrize(
    ("columns", "code"),
    [
        (np.diag([1.0, 1.0, 1.0]), "LPS"),
        (np.array([[0, 0, -1.0], [0, 1.0, 0], [-1.0, 0, 0]]), "IPR"),  # frame→I, column→R
        (np.array([[0, 1.0, 0], [0, 0, 1.0], [1.0, 0, 0]]), "SLP"),
    ],
)
def test_every_axis_permutation_and_sign_is_named(columns: np.ndarray, code: str) -> None:
    affine = np.eye(4)
    affine[:3, :3] = columns * np.array([3.0, 0.5, 0.9])  # spacing must not matter
    assert nearest_patient_axes(affine).code() == code


def test_a_45_degree_grid_still_gets_one_axis_each() -> None:
    c = math.cos(math.radians(45))
    affine = np.eye(4)
    affine[:3, :3] = np.array([[c, -c, 0], [c, c, 0], [0, 0, 1.0]])
    assert sorted(nearest_patient_axes(affine).grid_axis) == [0, 1, 2]


def _sitk_volume(direction: np.ndarray, spacing: tuple[float, float, float]) -> sitk.Image:
    image = sitk.GetImageFromArray(np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6))
    image.SetSpacing(spacing)
    image.SetDirection(tuple(direction.ravel()))
    image.SetOrigin((10.0, -20.0, 30.0))
    return image


def test_affine_of_maps_array_index_to_the_point_itk_gives() -> None:
    lean = np.deg2rad(20)
    direction = np.column_stack([[1.0, 0, 0], [0, 1.0, 0], [np.sin(lean), 0, np.cos(lean)]])
    image = _sitk_volume(direction, (0.8, 0.9, 3.0))  # sheared slice axis
    affine = affine_of(image)
    frame, row, column = 3, 2, 5
    expected = image.TransformIndexToPhysicalPoint((column, row, frame))
    np.testing.assert_allclose(affine @ [frame, row, column, 1.0], [*expected, 1.0], atol=1e-9)
    back = image_on(sitk.GetArrayFromImage(image), affine)
    np.testing.assert_allclose(back.GetDirection(), image.GetDirection(), atol=1e-12)
    np.testing.assert_allclose(back.GetSpacing(), image.GetSpacing(), atol=1e-12)
    np.testing.assert_allclose(back.GetOrigin(), image.GetOrigin(), atol=1e-12)


def test_voxel_volume_of_a_sheared_grid_is_gap_times_pixel_area() -> None:
    lean = np.deg2rad(30)
    direction = np.column_stack([[1.0, 0, 0], [0, 1.0, 0], [np.sin(lean), 0, np.cos(lean)]])
    step = 3.0 / np.cos(lean)  # 3 mm between slices along the normal
    image = _sitk_volume(direction, (0.8, 0.9, step))
    assert voxel_volume_ml(image) == pytest.approx(0.8 * 0.9 * 3.0 / 1000)


def test_degenerate_affines_are_refused() -> None:
    flat = np.eye(4)
    flat[2, 2] = 0.0
    with pytest.raises(InputError, match="without length"):
        axes_and_spacing(flat)
    coplanar = np.eye(4)
    coplanar[:3, 2] = [1.0, 1.0, 0.0]
    with pytest.raises(InputError, match="do not span"):
        axes_and_spacing(coplanar)
    with pytest.raises(InputError, match="3D"):
        image_on(np.zeros((4, 4)), np.eye(4))


def _stack(n: int, gap: float, lean_deg: float, normal: np.ndarray) -> np.ndarray:
    normal = normal / np.linalg.norm(normal)
    along_row = np.cross(normal, [0.0, 1.0, 0.0])
    along_row /= np.linalg.norm(along_row)
    step = gap * (normal + math.tan(math.radians(lean_deg)) * along_row)
    return np.array([5.0, -3.0, 7.0]) + np.outer(np.arange(n), step)


def test_a_straight_stack_fits_without_shear() -> None:
    normal = np.array([0.0, 0.3, 1.0])
    line = fit_slice_line(_stack(20, 3.0, 0.0, normal), normal)
    assert line.shear_deg == pytest.approx(0.0, abs=1e-9)
    assert line.off_line_mm.max() < 1e-9
    np.testing.assert_allclose(line.gaps, 3.0)


def test_a_sheared_stack_gives_its_lean_and_its_step() -> None:
    normal = np.array([0.0, 0.0, 1.0])
    positions = _stack(20, 3.0, 20.0, normal)
    line = fit_slice_line(positions, normal)
    assert line.shear_deg == pytest.approx(20.0)
    np.testing.assert_allclose(line.step, positions[1] - positions[0], atol=1e-9)
    np.testing.assert_allclose(straight_step(line, normal), line.step)
    assert line.shear_deg < MAX_SHEAR_DEG


def test_rounding_noise_is_not_a_shear() -> None:
    normal = np.array([0.0, 0.0, 1.0])
    positions = _stack(30, 1.0, 0.0, normal)
    positions[:, 0] += np.linspace(0.0, 0.01, 30)  # 0.01 mm over the whole stack
    line = fit_slice_line(positions, normal)
    np.testing.assert_allclose(straight_step(line, normal), [0.0, 0.0, 1.0], atol=1e-12)


def test_one_moved_slice_lies_off_the_line() -> None:
    normal = np.array([0.0, 0.0, 1.0])
    positions = _stack(20, 3.0, 0.0, normal)
    positions[9, 1] += 0.5
    line = fit_slice_line(positions, normal)
    assert int(np.argmax(line.off_line_mm)) == 9
    assert line.off_line_mm[9] > OFF_LINE_ATOL_MM
