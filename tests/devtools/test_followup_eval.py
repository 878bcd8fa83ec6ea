"""The follow-up evaluation splits the reference change by its direction and scores each side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from mslesion.devtools.followup_eval import (
    ReferenceLesion,
    Visit,
    _direction_scores,
    reference_lesions,
)

SHAPE = (8, 24, 24)  # frames, rows, columns
RISING = (slice(2, 5), slice(3, 7), slice(3, 7))
FALLING = (slice(2, 5), slice(14, 19), slice(14, 19))


def _image(array: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.0, 1.0, 3.0))
    return image


def _visit(folder: Path, name: str, flair: np.ndarray) -> Visit:
    path = folder / f"{name}_FLAIR.nii.gz"
    sitk.WriteImage(_image(flair.astype(np.float32)), str(path))
    transform = folder / f"{name}_to_common.txt"
    sitk.WriteTransform(sitk.Euler3DTransform(), str(transform))
    return Visit(path, None, None, transform)


def _pair(tmp_path: Path) -> tuple[tuple[Visit, Visit], sitk.Image, sitk.Image]:
    """A prior and a current visit on the common grid: one lesion brightens, one fades."""
    prior = np.full(SHAPE, 100.0)
    current = np.full(SHAPE, 100.0)
    prior[RISING], current[RISING] = 100.0, 160.0  # new lesion
    prior[FALLING], current[FALLING] = 170.0, 120.0  # shrinking lesion
    reference = np.zeros(SHAPE, np.uint8)
    reference[RISING] = reference[FALLING] = 1
    visits = (_visit(tmp_path, "v1", prior), _visit(tmp_path, "v2", current))
    return visits, _image(reference), _image(np.ones(SHAPE, np.uint8))


def test_reference_lesions_carry_the_direction_of_change(tmp_path: Path) -> None:
    visits, reference, brain = _pair(tmp_path)
    chance_now = np.zeros(SHAPE, np.float32)
    chance_now[RISING] = 0.9
    chances = (_image(np.zeros(SHAPE, np.float32)), _image(chance_now))
    found = reference_lesions(visits, chances, reference, brain, bias_correct=False)
    assert [lesion.direction for lesion in found] == [1, -1]
    rising, falling = found
    assert rising.flair_current > rising.flair_prior
    assert falling.flair_current < falling.flair_prior
    assert rising.probability_current_max == 0.9 and rising.probability_prior_max == 0.0
    assert rising.volume_ml == round(3 * 4 * 4 * 3.0 / 1000, 4)


def _lesion(direction: int) -> ReferenceLesion:
    return ReferenceLesion(
        volume_ml=0.1, direction=direction, flair_prior=1.0, flair_current=1.0,
        probability_prior_max=0.0, probability_current_max=0.0,
    )  # fmt: skip


def _scores(
    reference: np.ndarray, active: np.ndarray, lesions: list[ReferenceLesion], falling: np.ndarray
) -> dict[str, float | int]:
    """As score_pair calls it, detections already on the reference grid."""
    hit = set(np.unique(reference[(active > 0) & (reference > 0)]).tolist())
    det_ids = set(np.unique(active[active > 0]).tolist())
    return _direction_scores(reference, active, hit, det_ids, lesions, falling)


def test_each_direction_is_scored_against_its_own_detections() -> None:
    reference = np.zeros(SHAPE, np.int32)
    reference[RISING], reference[FALLING] = 1, 2
    lesions = [_lesion(1), _lesion(-1)]
    active = np.zeros(SHAPE, np.int32)
    active[RISING] = 1  # a true new lesion
    active[0, 20:22, 0:2] = 2  # a false one
    decreasing = np.zeros(SHAPE, bool)
    scores = _scores(reference, active, lesions, decreasing)
    assert scores["sensitivity_increasing"] == 1.0
    assert scores["false_detections_increasing"] == 1
    assert scores["sensitivity_decreasing"] == 0.0
    decreasing[FALLING] = True
    active[RISING] = 0  # a "new" lesion on the fading one does not count as found
    active[FALLING] = 3
    scores = _scores(reference, active, lesions, decreasing)
    assert scores["sensitivity_increasing"] == 0.0
    assert scores["sensitivity_decreasing"] == 1.0
    assert scores["detected_decreasing"] == 1
