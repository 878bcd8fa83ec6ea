"""PNG montage: real MR slices, lesion outlines, header, slice choice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from mslesion.services.errors import InputError
from mslesion.services.reporting.montage import (
    HEADER_PX,
    OUTLINE_RGB,
    TILE_PX,
    WARNING_RGB,
    choose_slices,
    montage_size,
    montage_title,
    render_montage,
)
from mslesion.services.reporting.seg import patient_affine
from mslesion.services.segmentation.postprocess import LesionReport
from tests.services.imaging.scenes import TILTED_16, centred_grid, head_scene
from tests.services.reporting.conftest import MODEL_NAME, MODEL_VERSION


@pytest.fixture(scope="module")
def flair(ge_series: list[pydicom.Dataset]) -> np.ndarray:
    """The GE series stands in for a FLAIR: what matters here is real anatomy and geometry."""
    return np.stack([ds.pixel_array for ds in ge_series]).astype(np.float32)


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def _has(pixels: np.ndarray, rgb: tuple[int, int, int]) -> int:
    return int(np.all(pixels == rgb, axis=-1).sum())


@pytest.mark.shared_data
def test_montage_axial_with_outlines(
    flair: np.ndarray,
    lesion_mask: np.ndarray,
    lesion_report: LesionReport,
    ge_series: list[pydicom.Dataset],
    tmp_path: Path,
) -> None:
    title = montage_title(MODEL_NAME, MODEL_VERSION, lesion_report)
    path = render_montage(
        flair,
        lesion_mask,
        tmp_path / "montage.png",
        title=title,
        affine=patient_affine(ge_series),
    )
    pixels = _pixels(path)
    assert pixels.shape[1::-1] == montage_size(12)
    assert _has(pixels[HEADER_PX:], OUTLINE_RGB) > 100  # both spheres outlined
    assert _has(pixels[:HEADER_PX], WARNING_RGB) > 0  # the disclaimer line
    assert "2 lesions" in title and MODEL_VERSION in title and "1.40 ml" in title


@pytest.mark.shared_data
def test_outlines_leave_lesion_pixels_visible(
    flair: np.ndarray, lesion_mask: np.ndarray, tmp_path: Path
) -> None:
    """Outlines lie outside the lesion: drawing them does not hide the lesion's signal."""
    path = render_montage(flair, lesion_mask, tmp_path / "m.png", n_slices=1, title="t")
    pixels = _pixels(path)
    assert pixels.shape[1::-1] == montage_size(1)
    tile = pixels[HEADER_PX:]
    outline = np.all(tile == OUTLINE_RGB, axis=-1)
    assert outline.any()
    rows, columns = np.nonzero(outline)
    centre = tile[int(rows.mean()), int(columns.mean())]
    assert centre[0] == centre[1] == centre[2]  # grey: the lesion itself is not painted


@pytest.mark.shared_data
def test_empty_mask_has_no_outline(flair: np.ndarray, tmp_path: Path) -> None:
    path = render_montage(flair, np.zeros(flair.shape, np.uint8), tmp_path / "e.png", title="t")
    pixels = _pixels(path)
    assert pixels.shape[1::-1] == montage_size(12)
    assert _has(pixels, OUTLINE_RGB) == 0
    assert pixels[HEADER_PX:].max() > 0  # context slices still show anatomy


def test_choose_slices_prefers_lesions_and_adds_context() -> None:
    lesions = np.zeros((40, 8, 8), bool)
    lesions[10:14, 2:6, 2:6] = True  # big lesion, 4 slices
    lesions[30, 3, 3] = True  # one-voxel lesion
    brain = np.zeros_like(lesions)
    brain[5:36] = True
    chosen = choose_slices(lesions, brain, n_slices=6)
    assert len(chosen) == 6 and chosen == sorted(chosen)
    assert 30 in chosen  # the small lesion is not crowded out by the big one
    assert sum(10 <= k < 14 for k in chosen) >= 2
    assert all(5 <= k < 36 for k in chosen)
    assert any(not lesions[k].any() for k in chosen)  # context


def test_choose_slices_never_exceeds_depth() -> None:
    lesions = np.zeros((3, 4, 4), bool)
    assert choose_slices(lesions, np.ones_like(lesions), n_slices=12) == [0, 1, 2]


def test_bad_input_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="3D and equal"):
        render_montage(np.zeros((4, 4, 4)), np.zeros((4, 4, 5)), tmp_path / "x.png", title="t")
    with pytest.raises(InputError, match="n_slices"):
        render_montage(
            np.zeros((4, 4, 4)), np.zeros((4, 4, 4)), tmp_path / "x.png", n_slices=0, title="t"
        )


def test_tilted_thick_slice_study_gets_an_axial_montage_in_radiological_convention(
    tmp_path: Path,
) -> None:
    """The issue's study: 3 mm slices tilted 16° once failed with "no clear axial orientation"."""
    shape = (60, 250, 250)
    affine = centred_grid(TILTED_16[:3, :3], shape)
    image, lesion = head_scene(affine, shape)  # the lesion is in the patient's right front
    path = render_montage(
        image, lesion.astype(np.uint8), tmp_path / "m.png", n_slices=1, title="t", affine=affine
    )
    tile = _pixels(path)[HEADER_PX:]
    rows, columns = np.nonzero(np.all(tile == OUTLINE_RGB, axis=-1))
    assert rows.size > 50
    assert columns.mean() < TILE_PX / 2  # the patient's right on the image's left
    assert rows.mean() < TILE_PX / 2  # anterior at the top
