"""Slice stacks judged from headers: sheared stacks are volumes, broken ones are refused early.

One geometry model decides for the reader and for the SEG writer, so a FLAIR the reader
assembles is never refused after the cascade by the stage that writes the results.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from mslesion.services.config import get_settings
from mslesion.services.dicom.errors import DicomInputError
from mslesion.services.dicom.reader import load_series_volume, read_source_datasets, read_study
from mslesion.services.dicom.selection import select_series
from mslesion.services.imaging.geometry import MAX_SHEAR_DEG, affine_of, voxel_volume_ml
from mslesion.services.reporting.seg import build_seg, patient_affine
from tests.services.dicom.synthetic import SPACING

Positions = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _files(root: Path) -> list[Path]:
    return sorted(root.rglob("IM*.dcm"))


def _move_slices(root: Path, move: Positions) -> None:
    """Rewrite every ImagePositionPatient with ``move(positions, row direction, normal)``."""
    datasets = [pydicom.dcmread(path) for path in _files(root)]
    iop = np.array([float(v) for v in datasets[0].ImageOrientationPatient])
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in datasets])
    moved = move(positions, iop[:3], np.cross(iop[:3], iop[3:]))
    for path, dataset, position in zip(_files(root), datasets, moved, strict=True):
        dataset.ImagePositionPatient = [f"{v:.6f}" for v in position]
        dataset.save_as(path)


def _shear(degrees: float) -> Positions:
    def move(positions: np.ndarray, row: np.ndarray, normal: np.ndarray) -> np.ndarray:
        along = positions @ normal
        return positions + np.outer((along - along.min()) * math.tan(math.radians(degrees)), row)

    return move


def _jitter(in_plane_mm: float, along_mm: float) -> Positions:
    """Position noise just inside the tolerances (as a scanner's rounding could give)."""

    def move(positions: np.ndarray, row: np.ndarray, normal: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(11)
        n = len(positions)
        return (
            positions
            + np.outer(rng.uniform(-in_plane_mm, in_plane_mm, n), row)
            + np.outer(rng.uniform(-along_mm, along_mm, n), normal)
        )

    return move


def _shift_one(index: int, mm: float) -> Positions:
    def move(positions: np.ndarray, row: np.ndarray, normal: np.ndarray) -> np.ndarray:
        moved = positions.copy()
        moved[index] += mm * row
        return moved

    return move


def test_a_sheared_stack_is_a_volume_whose_slice_axis_leans(flair_dir: Path) -> None:
    reference = load_series_volume(read_study(flair_dir).series[0])
    _move_slices(flair_dir, _shear(20.0))
    sheared = load_series_volume(read_study(flair_dir).series[0])
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(sheared.image), sitk.GetArrayFromImage(reference.image)
    )
    for k in (0, 9, 19):  # every slice lies where its header says
        position = [float(v) for v in sheared.headers[k].ImagePositionPatient]
        np.testing.assert_allclose(
            sheared.image.TransformIndexToPhysicalPoint((0, 0, k)), position, atol=1e-3
        )
    gap_mm = SPACING[2]
    assert sheared.image.GetSpacing()[2] == pytest.approx(gap_mm / math.cos(math.radians(20)))
    assert voxel_volume_ml(sheared.image) == pytest.approx(voxel_volume_ml(reference.image))


def test_a_stack_leaning_beyond_the_limit_is_refused_at_selection(flair_dir: Path) -> None:
    _move_slices(flair_dir, _shear(MAX_SHEAR_DEG + 10))
    with pytest.raises(DicomInputError, match="no FLAIR series") as caught:
        select_series(read_study(flair_dir), required=("flair",))
    message = str(caught.value)
    assert "'AX FLAIR'" in message and "cannot be a FLAIR volume: sheared stack" in message
    assert f"lean {MAX_SHEAR_DEG + 10:.1f}°" in message


def test_a_slice_moved_within_its_plane_is_refused_at_selection(flair_dir: Path) -> None:
    _move_slices(flair_dir, _shift_one(7, 0.5))
    with pytest.raises(DicomInputError, match="not stacked along one straight line") as caught:
        select_series(read_study(flair_dir), required=("flair",))
    assert "instance #" in str(caught.value)


def test_a_broken_stack_gives_way_to_another_candidate(study_dir: Path, tmp_path: Path) -> None:
    """Two FLAIRs: the one that cannot be a volume is passed over, with the reason logged."""
    study = read_study(study_dir)
    flair = study.series[0] if "FLAIR" in study.series[0].description else study.series[1]
    assert flair.series_number == 4
    _move_slices(study_dir / "flair", _shift_one(3, 1.0))
    selection = select_series(read_study(study_dir), required=("t1",))
    assert "flair" not in selection.series
    assert any("cannot be a FLAIR volume" in line for line in selection.decisions)


@pytest.mark.parametrize(
    "move",
    [_shear(20.0), _shear(-25.0), _jitter(0.03, 0.01), _shift_one(0, 0.04)],
    ids=["shear 20", "shear -25", "jitter", "first slice nudged"],
)
def test_the_seg_writer_accepts_every_stack_the_reader_accepts(
    flair_dir: Path, move: Positions
) -> None:
    _move_slices(flair_dir, move)
    volume = load_series_volume(read_study(flair_dir).series[0])
    sources = read_source_datasets(volume)
    np.testing.assert_allclose(patient_affine(sources), affine_of(volume.image), atol=1e-3)
    mask = np.zeros(sitk.GetArrayViewFromImage(volume.image).shape, np.uint8)
    mask[5:8, 20:30, 20:30] = 1
    seg = build_seg(sources, mask, "m", "1.0", get_settings())
    assert int(seg.NumberOfFrames) == 3
