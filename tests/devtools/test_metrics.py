"""Tests of the evaluation metrics, file reading and table (mslesion/devtools/), against hand
counts."""

from __future__ import annotations

import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mslesion.devtools.evaluation_io import evaluate_files
from mslesion.devtools.metrics import (
    NUMERIC_METRICS,
    CaseMetrics,
    EvaluationSummary,
    evaluate_case,
    summarise,
)
from mslesion.devtools.report_table import format_table
from mslesion.services.errors import InputError

ML_PER_MM3 = 0.001


def _empty(shape: tuple[int, int, int] = (10, 10, 10)) -> np.ndarray:
    return np.zeros(shape, dtype=np.uint8)


def test_dice_and_volumes_by_hand() -> None:
    truth = _empty()
    truth[2, 2, 0:6] = 1  # 6 voxels
    pred = _empty()
    pred[2, 2, 3:7] = 1  # 4 voxels, 3 of them (z = 3, 4, 5) in the truth
    m = evaluate_case(pred, truth, voxel_volume_ml=ML_PER_MM3, case="line")
    assert m.case == "line"
    assert m.dice == pytest.approx(2 * 3 / (4 + 6))  # 0.6
    assert m.truth_volume_ml == pytest.approx(0.006)
    assert m.pred_volume_ml == pytest.approx(0.004)
    assert m.abs_volume_difference_ml == pytest.approx(0.002)
    assert m.abs_volume_difference_pct == pytest.approx(100 * 2 / 6)
    assert (m.n_truth_lesions, m.n_pred_lesions, m.n_detected_lesions) == (1, 1, 1)
    assert (m.lesion_tpr, m.lesion_precision, m.lesion_f1) == (1.0, 1.0, 1.0)


def test_diagonal_neighbours_form_one_lesion_separated_voxels_two() -> None:
    corner_touching = _empty()
    corner_touching[1, 1, 1] = 1
    corner_touching[2, 2, 2] = 1  # shares only a corner: joined under 26-connectivity
    separated = _empty()
    separated[1, 1, 1] = 1
    separated[1, 1, 3] = 1  # one empty voxel between them
    assert evaluate_case(corner_touching, corner_touching, ML_PER_MM3, "c").n_truth_lesions == 1
    assert evaluate_case(separated, separated, ML_PER_MM3, "s").n_truth_lesions == 2
    # One predicted voxel detects the whole diagonal lesion.
    single = _empty()
    single[2, 2, 2] = 1
    m = evaluate_case(single, corner_touching, ML_PER_MM3, "d")
    assert (m.n_truth_lesions, m.n_detected_lesions, m.lesion_tpr) == (1, 1, 1.0)


def _missed_and_false_positive_case() -> tuple[np.ndarray, np.ndarray]:
    truth = _empty()
    truth[1:3, 1:3, 1:3] = 1  # A, 8 voxels
    truth[6:8, 1:3, 1:3] = 1  # B, 8 voxels
    truth[1:3, 6:8, 6:8] = 1  # C, 8 voxels, missed
    pred = _empty()
    pred[2:4, 2:4, 2:4] = 1  # touches A in the single voxel (2, 2, 2), 8 voxels
    pred[6:8, 1:3, 1:2] = 1  # inside B, 4 voxels
    pred[7:9, 7:9, 7:9] = 1  # false positive, 8 voxels
    pred[9, 0, 9] = 1  # false positive, 1 voxel
    return pred, truth


def test_missed_and_false_positive_lesions_by_hand() -> None:
    pred, truth = _missed_and_false_positive_case()
    voxel_ml = 0.008  # 2 mm isotropic
    m = evaluate_case(pred, truth, voxel_volume_ml=voxel_ml, case="mixed")
    assert m.n_truth_lesions == 3
    assert m.n_pred_lesions == 4
    assert m.n_detected_lesions == 2
    assert m.n_false_positive_lesions == 2
    assert m.lesion_tpr == pytest.approx(2 / 3)
    assert m.lesion_precision == pytest.approx(2 / 4)
    assert m.lesion_f1 == pytest.approx(2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2))  # 4/7
    # 24 truth voxels, 21 predicted, 1 + 4 in common.
    assert m.dice == pytest.approx(2 * 5 / (24 + 21))
    assert m.truth_volume_ml == pytest.approx(24 * voxel_ml)
    assert m.pred_volume_ml == pytest.approx(21 * voxel_ml)
    assert m.abs_volume_difference_ml == pytest.approx(3 * voxel_ml)
    assert m.abs_volume_difference_pct == pytest.approx(12.5)


def test_reportable_diagnostics_count_only_truth_lesions_above_the_floor() -> None:
    truth = np.zeros((12, 12, 12), np.uint8)
    truth[1:4, 1:4, 1:4] = 1  # 27 voxels, found
    truth[8:10, 8:10, 8:10] = 1  # 8 voxels, found
    truth[1, 10, 1] = 1  # 1 voxel, missed
    pred = np.zeros_like(truth)
    pred[2:4, 2:4, 2:4] = 1
    pred[8:10, 8:10, 8:10] = 1
    plain = evaluate_case(pred, truth, 0.001, "c")
    assert plain.lesion_tpr == pytest.approx(2 / 3)
    assert plain.n_truth_lesions_reportable == 0 and math.isnan(plain.lesion_tpr_reportable)
    floor = evaluate_case(pred, truth, 0.001, "c", min_truth_voxels=8)
    assert floor.n_truth_lesions_reportable == 2
    assert floor.lesion_tpr_reportable == 1.0 and floor.lesion_f1_reportable == 1.0
    assert floor.lesion_tpr == plain.lesion_tpr  # the standard metric is untouched
    high = evaluate_case(pred, truth, 0.001, "c", min_truth_voxels=20)
    assert high.n_truth_lesions_reportable == 1 and high.lesion_tpr_reportable == 1.0
    none = evaluate_case(pred, truth, 0.001, "c", min_truth_voxels=100)
    assert none.n_truth_lesions_reportable == 0 and math.isnan(none.lesion_tpr_reportable)


def test_swapping_prediction_and_truth_swaps_tpr_and_precision() -> None:
    pred, truth = _missed_and_false_positive_case()
    forward = evaluate_case(pred, truth, ML_PER_MM3, "f")
    backward = evaluate_case(truth, pred, ML_PER_MM3, "b")
    assert backward.lesion_tpr == pytest.approx(forward.lesion_precision)
    assert backward.lesion_precision == pytest.approx(forward.lesion_tpr)
    assert backward.dice == pytest.approx(forward.dice)


def test_both_empty_follows_documented_conventions() -> None:
    m = evaluate_case(_empty(), _empty(), ML_PER_MM3, "empty")
    assert m.dice == 1.0
    assert math.isnan(m.lesion_tpr)
    assert math.isnan(m.lesion_precision)
    assert math.isnan(m.lesion_f1)
    assert math.isnan(m.abs_volume_difference_pct)
    assert (m.n_truth_lesions, m.n_pred_lesions) == (0, 0)
    assert m.truth_volume_ml == m.pred_volume_ml == m.abs_volume_difference_ml == 0.0


def test_empty_truth_with_prediction() -> None:
    pred = _empty()
    pred[4, 4, 4] = 1
    m = evaluate_case(pred, _empty(), ML_PER_MM3, "fp only")
    assert m.dice == 0.0
    assert math.isnan(m.lesion_tpr)
    assert m.lesion_precision == 0.0
    assert m.lesion_f1 == 0.0
    assert m.n_false_positive_lesions == 1
    assert math.isnan(m.abs_volume_difference_pct)
    assert m.abs_volume_difference_ml == pytest.approx(0.001)


def test_empty_prediction_with_truth() -> None:
    truth = _empty()
    truth[4, 4, 4:6] = 1
    m = evaluate_case(_empty(), truth, ML_PER_MM3, "missed")
    assert m.dice == 0.0
    assert m.lesion_tpr == 0.0
    assert math.isnan(m.lesion_precision)
    assert m.lesion_f1 == 0.0
    assert m.abs_volume_difference_pct == pytest.approx(100.0)


def test_masks_are_binarised_above_zero() -> None:
    truth = np.zeros((6, 6, 6), dtype=np.int16)
    truth[1, 1, 1] = 1
    truth[4, 4, 4] = 2  # label values other than 1 still count as lesion
    pred = np.zeros((6, 6, 6), dtype=np.float32)
    pred[1, 1, 1] = 0.5
    pred[4, 4, 4] = -1.0  # not > 0: background
    pred[0, 5, 0] = np.nan  # not > 0: background
    m = evaluate_case(pred, truth, ML_PER_MM3, "binarise")
    assert (m.n_truth_lesions, m.n_pred_lesions, m.n_detected_lesions) == (2, 1, 1)
    assert m.dice == pytest.approx(2 * 1 / (1 + 2))


def test_shape_mismatch_names_both_shapes() -> None:
    with pytest.raises(InputError, match=r"\(4, 4, 4\).*\(4, 4, 5\)"):
        evaluate_case(np.zeros((4, 4, 4)), np.zeros((4, 4, 5)), ML_PER_MM3, "bad")


@pytest.mark.parametrize("bad_volume", [0.0, -0.001, math.nan, math.inf])
def test_bad_voxel_volume_is_rejected(bad_volume: float) -> None:
    with pytest.raises(InputError, match="voxel_volume_ml"):
        evaluate_case(_empty(), _empty(), bad_volume, "bad")


def test_non_3d_masks_are_rejected() -> None:
    with pytest.raises(InputError, match=r"\(4, 4\)"):
        evaluate_case(np.zeros((4, 4)), np.zeros((4, 4)), ML_PER_MM3, "2d")


def _case_with_volumes(case: str, truth_voxels: int, pred_voxels: int) -> CaseMetrics:
    truth = np.zeros(200, dtype=np.uint8)
    truth[:truth_voxels] = 1
    pred = np.zeros(200, dtype=np.uint8)
    pred[:pred_voxels] = 1
    return evaluate_case(pred.reshape(2, 10, 10), truth.reshape(2, 10, 10), ML_PER_MM3, case)


def test_summary_means_and_volume_correlation_against_numpy() -> None:
    cases = [
        _case_with_volumes("a", 10, 12),
        _case_with_volumes("b", 40, 30),
        _case_with_volumes("c", 25, 31),
    ]
    summary = summarise(cases)
    truth = [c.truth_volume_ml for c in cases]
    pred = [c.pred_volume_ml for c in cases]
    assert summary.volume_correlation == pytest.approx(np.corrcoef(truth, pred)[0, 1])
    assert summary.mean["dice"] == pytest.approx(np.mean([c.dice for c in cases]))
    assert summary.mean["truth_volume_ml"] == pytest.approx(np.mean(truth))
    assert set(summary.mean) == set(NUMERIC_METRICS)
    assert [c.case for c in summary.cases] == ["a", "b", "c"]


def test_summary_means_skip_undefined_values() -> None:
    with_lesions = _case_with_volumes("lesions", 10, 5)
    empty = evaluate_case(_empty(), _empty(), ML_PER_MM3, "empty")
    summary = summarise([with_lesions, empty])
    # TPR is NaN for the empty case: the mean is that of the other case only.
    assert summary.mean["lesion_tpr"] == pytest.approx(with_lesions.lesion_tpr)
    # Dice is defined (1.0) for both.
    assert summary.mean["dice"] == pytest.approx((with_lesions.dice + 1.0) / 2)
    only_empty = summarise([empty, empty])
    assert math.isnan(only_empty.mean["lesion_f1"])


def test_volume_correlation_is_none_when_undefined() -> None:
    assert summarise([_case_with_volumes("one", 5, 6)]).volume_correlation is None
    same_truth = [_case_with_volumes("x", 5, 6), _case_with_volumes("y", 5, 9)]
    assert summarise(same_truth).volume_correlation is None
    with pytest.raises(InputError, match="empty"):
        summarise([])


def test_summary_round_trips_through_json_with_nan_as_null() -> None:
    summary = summarise([evaluate_case(_empty(), _empty(), ML_PER_MM3, "empty")])
    text = summary.model_dump_json()
    assert '"lesion_tpr":null' in text
    again = EvaluationSummary.model_validate_json(text)
    assert math.isnan(again.cases[0].lesion_tpr)
    assert again.cases[0].dice == 1.0
    assert again.volume_correlation is None


def test_format_table_has_case_rows_mean_row_and_correlation() -> None:
    cases = [
        _case_with_volumes("patient_a", 10, 12),
        evaluate_case(_empty(), _empty(), ML_PER_MM3, "b"),
        _case_with_volumes("c", 25, 31),
    ]
    summary = summarise(cases)
    text = format_table(summary)
    lines = text.splitlines()
    table = [line for line in lines if not line.startswith("Volume correlation")]
    assert lines[0].split()[:2] == ["case", "Dice"]
    assert lines[2].startswith("patient_a ")
    assert lines[3].startswith("b ")
    assert "n/a" in lines[3]  # undefined TPR of the empty case
    assert lines[-2].startswith("MEAN ")
    assert len({len(line) for line in table}) == 1  # fixed width
    mean_dice = lines[-2].split()[1]
    assert mean_dice == f"{summary.mean['dice']:.3f}"
    assert summary.volume_correlation is not None
    assert lines[-1].endswith(f"{summary.volume_correlation:.3f}")


def _save(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def test_evaluate_files_matches_in_memory_evaluation(tmp_path: Path) -> None:
    pred, truth = _missed_and_false_positive_case()
    affine = np.diag([-2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [10.0, -20.0, -5.0]
    pairs = [
        (
            _save(tmp_path / "pred" / "caseA.nii.gz", pred, affine),
            _save(tmp_path / "caseA" / "lesion_mask.nii.gz", truth, affine),
        ),
        (
            _save(tmp_path / "pred" / "caseB.nii.gz", truth, affine),
            _save(tmp_path / "caseB" / "lesion_mask.nii.gz", truth, affine),
        ),
    ]
    summary = evaluate_files(pairs)
    assert [c.case for c in summary.cases] == ["caseA/lesion_mask", "caseB/lesion_mask"]
    expected = evaluate_case(pred, truth, 0.008, "caseA/lesion_mask")
    actual = summary.cases[0].model_dump()
    assert actual.pop("case") == expected.case
    # Volumes come from the header's float32 affine: equal up to rounding.
    assert actual == pytest.approx(expected.model_dump(exclude={"case"}), nan_ok=True)
    assert summary.cases[1].dice == 1.0
    named = evaluate_files(pairs, case_names=["first", "second"])
    assert [c.case for c in named.cases] == ["first", "second"]


def test_evaluate_files_accepts_trailing_singleton_dimension(tmp_path: Path) -> None:
    truth = _empty()
    truth[3:5, 3:5, 3:5] = 1
    affine = np.eye(4)
    pred_path = _save(tmp_path / "pred.nii", truth[..., np.newaxis], affine)
    truth_path = _save(tmp_path / "truth.nii.gz", truth, affine)
    summary = evaluate_files([(pred_path, truth_path)])
    assert summary.cases[0].case == "truth"
    assert summary.cases[0].dice == 1.0
    assert summary.cases[0].truth_volume_ml == pytest.approx(0.008)


def test_evaluate_files_rejects_affine_mismatch_naming_both_files(tmp_path: Path) -> None:
    mask = _empty()
    mask[2, 2, 2] = 1
    pred_path = _save(tmp_path / "pred.nii.gz", mask, np.diag([1.0, 1.0, 1.0, 1.0]))
    truth_path = _save(tmp_path / "truth.nii.gz", mask, np.diag([1.0, 1.0, 1.001, 1.0]))
    with pytest.raises(InputError) as info:
        evaluate_files([(pred_path, truth_path)])
    assert str(pred_path) in str(info.value)
    assert str(truth_path) in str(info.value)


def test_evaluate_files_tolerates_affine_rounding(tmp_path: Path) -> None:
    mask = _empty()
    mask[2, 2, 2] = 1
    shifted = np.eye(4)
    shifted[0, 3] = 5e-5  # float32 header round-off is far below AFFINE_ATOL
    pred_path = _save(tmp_path / "pred.nii.gz", mask, np.eye(4))
    truth_path = _save(tmp_path / "truth.nii.gz", mask, shifted)
    assert evaluate_files([(pred_path, truth_path)]).cases[0].dice == 1.0


def test_evaluate_files_rejects_shape_mismatch_naming_both_files(tmp_path: Path) -> None:
    pred_path = _save(tmp_path / "pred.nii.gz", _empty((10, 10, 10)), np.eye(4))
    truth_path = _save(tmp_path / "truth.nii.gz", _empty((10, 10, 11)), np.eye(4))
    with pytest.raises(InputError, match=r"pred\.nii\.gz.*\(10, 10, 10\).*truth\.nii\.gz"):
        evaluate_files([(pred_path, truth_path)])


def test_evaluate_files_reports_unreadable_file(tmp_path: Path) -> None:
    truth_path = _save(tmp_path / "truth.nii.gz", _empty(), np.eye(4))
    missing = tmp_path / "missing.nii.gz"
    with pytest.raises(InputError, match=r"missing\.nii\.gz"):
        evaluate_files([(missing, truth_path)])
    with pytest.raises(InputError, match=r"no .*pairs"):
        evaluate_files([])


@settings(max_examples=60, deadline=None)
@given(
    pred=arrays(np.uint8, (5, 6, 4), elements=st.integers(0, 1)),
    truth=arrays(np.uint8, (5, 6, 4), elements=st.integers(0, 1)),
)
def test_metric_invariants(pred: np.ndarray, truth: np.ndarray) -> None:
    m = evaluate_case(pred, truth, ML_PER_MM3, "random")
    assert 0.0 <= m.dice <= 1.0
    assert m.n_detected_lesions <= m.n_truth_lesions
    assert m.n_false_positive_lesions <= m.n_pred_lesions
    for value in (m.lesion_tpr, m.lesion_precision, m.lesion_f1):
        assert math.isnan(value) or 0.0 <= value <= 1.0
    same = evaluate_case(truth, truth, ML_PER_MM3, "same")
    assert same.dice == 1.0
    assert same.abs_volume_difference_ml == 0.0
    if same.n_truth_lesions:
        assert same.lesion_tpr == same.lesion_precision == same.lesion_f1 == 1.0
