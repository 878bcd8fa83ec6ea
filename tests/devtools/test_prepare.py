"""A native clinical case goes onto the model grid and back without losing its lesions."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mslesion.devtools.crosssite import score_baseline
from mslesion.devtools.metrics import evaluate_case
from mslesion.devtools.prepare import (
    PreparedCase,
    load_prepared,
    native_truth,
    prepare_dataset,
    to_native,
)
from mslesion.services.errors import InputError
from tests.devtools.conftest import CASE


def _model_grid_mask(case: PreparedCase) -> np.ndarray:
    return np.asarray(nib.load(str(case.folder / "lesion_mask.nii.gz")).dataobj) > 0


def test_every_series_and_the_prior_are_on_the_model_grid(prepared: PreparedCase) -> None:
    assert prepared.modalities == ("flair", "t1", "t2")
    shapes = {
        nib.load(str(prepared.folder / name)).shape
        for name in ("FLAIR.nii.gz", "T1.nii.gz", "T2.nii.gz", "wm_prior.nii.gz")
    }
    assert shapes == {(182, 218, 182)}
    assert load_prepared(prepared.folder.parent) == [prepared]


def test_the_lesion_load_survives_the_trip_to_the_model_grid(prepared: PreparedCase) -> None:
    truth, voxel_ml = native_truth(prepared)
    native_ml = float(truth.sum()) * voxel_ml
    model_ml = float(_model_grid_mask(prepared).sum()) * 0.001
    assert native_ml > 1.0
    assert abs(model_ml / native_ml - 1) < 0.25  # thick slices: partial volume at the edges


def test_back_on_the_native_grid_the_mask_matches_the_truth(prepared: PreparedCase) -> None:
    truth, voxel_ml = native_truth(prepared)
    back = to_native(prepared, _model_grid_mask(prepared).astype(np.float32)) >= 0.5
    assert back.shape == truth.shape
    assert evaluate_case(back, truth, voxel_ml, CASE).dice > 0.7


def test_the_baseline_is_scored_on_the_native_grid(prepared: PreparedCase) -> None:
    (scores,) = score_baseline([prepared])
    truth, voxel_ml = native_truth(prepared)
    assert scores.case == CASE
    assert scores.truth_volume_ml == pytest.approx(float(truth.sum()) * voxel_ml)


def test_a_case_without_a_mask_is_refused(tmp_path: Path, shared_data: Path) -> None:
    case = tmp_path / "src" / "nomask"
    case.mkdir(parents=True)
    (case / "FLAIR.nii.gz").symlink_to(shared_data / "insights-ms" / CASE / "FLAIR.nii.gz")
    with pytest.raises(InputError, match="needs FLAIR and lesion_mask"):
        prepare_dataset(tmp_path / "src", tmp_path / "out")
