"""Re-slicing a head onto clinical acquisition grids: the anatomy stays put, only the grid moves."""

from __future__ import annotations

import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from mslesion.devtools.reslice import Acquisition, acquisition_grid, reslice, write_nifti


def _source(shape: tuple[int, int, int] = (40, 48, 36)) -> sitk.Image:
    """A 1 mm random 'head' (zero border) on an axial LPS grid, array (z, y, x)."""
    values = np.random.default_rng(3).uniform(10, 100, shape).astype(np.float32)
    values[:3], values[-3:], values[:, :3], values[:, -3:] = 0, 0, 0, 0
    values[:, :, :3], values[:, :, -3:] = 0, 0
    image = sitk.GetImageFromArray(values)
    image.SetOrigin((-20.0, -30.0, -15.0))
    return image


def test_axial_tilt_turns_the_normal_about_left_right() -> None:
    row, _, normal = Acquisition(tilt_deg=(16.0, 0.0)).in_plane_axes()
    np.testing.assert_allclose(row, [1.0, 0.0, 0.0], atol=1e-12)
    assert math.degrees(math.acos(normal @ [0.0, 0.0, 1.0])) == pytest.approx(16.0)
    _, _, rolled = Acquisition(tilt_deg=(0.0, 12.0)).in_plane_axes()
    assert math.degrees(math.acos(rolled @ [0.0, 0.0, 1.0])) == pytest.approx(12.0)
    assert rolled[1] == pytest.approx(0.0)  # a roll keeps the normal out of the A-P direction


@pytest.mark.parametrize(
    ("plane", "normal"),
    [("axial", [0, 0, 1]), ("sagittal", [-1, 0, 0]), ("coronal", [0, 1, 0])],
)
def test_planes_have_the_scanners_normals(plane: str, normal: list[int]) -> None:
    _, _, found = Acquisition(plane).in_plane_axes()  # type: ignore[arg-type]
    np.testing.assert_allclose(found, normal, atol=1e-12)


def test_flips_and_shear_change_the_index_steps() -> None:
    steps = Acquisition(slice_mm=3.0, flip=(True, False, True), shear_deg=20.0).axes()
    np.testing.assert_allclose(steps[:, 0], [-1.0, 0.0, 0.0])
    np.testing.assert_allclose(steps[:, 2], [-3.0 * math.tan(math.radians(20)), 0.0, -3.0])


def test_an_untilted_1mm_sagittal_reslice_samples_the_source_voxels_exactly() -> None:
    source = _source()
    acquisition = Acquisition("sagittal")
    grid = acquisition_grid(source, acquisition)
    out = reslice(source, grid, 1.0, acquisition.in_plane_axes()[2])
    values = sitk.GetArrayViewFromImage(out)
    for source_index in [(5, 7, 9), (10, 20, 30), (30, 40, 20)]:  # (x, y, z)
        point = source.TransformIndexToPhysicalPoint(source_index)
        index = np.array(out.TransformPhysicalPointToContinuousIndex(point))
        np.testing.assert_allclose(index, np.round(index), atol=1e-6)  # on a grid point
        expected = sitk.GetArrayViewFromImage(source)[source_index[::-1]]
        found = values[tuple(int(i) for i in np.round(index)[::-1])]
        assert found == pytest.approx(float(expected), abs=1e-3)


def test_the_grid_covers_the_head_with_a_margin() -> None:
    source = _source()
    grid = acquisition_grid(source, Acquisition(tilt_deg=(25.0, 10.0), slice_mm=3.0))
    head = np.argwhere(sitk.GetArrayViewFromImage(source) > 0)
    for z, y, x in head[:: max(1, len(head) // 200)]:
        point = source.TransformIndexToPhysicalPoint((int(x), int(y), int(z)))
        index = np.array(grid.TransformPhysicalPointToContinuousIndex(point))
        assert (index >= 0).all() and (index <= np.array(grid.GetSize()) - 1).all()


def test_a_thick_slice_is_the_mean_across_its_thickness() -> None:
    plane = np.zeros((30, 20, 20), np.float32)
    plane[15] = 90.0  # one 1 mm bright plane
    source = sitk.GetImageFromArray(plane)
    acquisition = Acquisition(slice_mm=3.0)
    grid = acquisition_grid(sitk.GetImageFromArray(np.ones_like(plane)), acquisition)
    out = sitk.GetArrayFromImage(
        reslice(source, grid, 3.0, np.array([0.0, 0.0, 1.0]), fraction=True)
    )
    assert out.max() == pytest.approx(30.0, abs=1e-3)  # a third of the slab is the plane


def test_write_nifti_keeps_a_sheared_grid(tmp_path: Path) -> None:
    source = _source()
    acquisition = Acquisition(slice_mm=2.0, shear_deg=20.0)
    grid = acquisition_grid(source, acquisition)
    image = reslice(source, grid, 2.0, acquisition.in_plane_axes()[2])
    path = write_nifti(image, tmp_path / "sheared.nii.gz")
    affine = nib.load(str(path)).affine  # type: ignore[attr-defined]
    ras_step = affine[:3, 2]
    lps_step = np.array([-ras_step[0], -ras_step[1], ras_step[2]])
    np.testing.assert_allclose(lps_step, acquisition.axes()[:, 2], atol=1e-6)
