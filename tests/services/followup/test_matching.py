"""Lesion matching across visits: categories, hysteresis, identities through merges and splits."""

from __future__ import annotations

import numpy as np
import pytest

from mslesion.services.followup.analysis import CATEGORY_VALUE
from mslesion.services.followup.matching import (
    VisitLesion,
    VisitMaps,
    categorise,
    match_visits,
)
from mslesion.services.followup.model import (
    ChangeCategory,
    ChangeThresholds,
    LesionChange,
    Location,
)

SHAPE = (20, 40, 40)
VOXEL_ML = 0.001  # 1 mm isotropic
T = ChangeThresholds()


def _box(labels: np.ndarray, value: int, z: int, y: int, x: int, size: int) -> None:
    labels[z : z + size, y : y + size, x : x + size] = value


def _lesions(labels: np.ndarray, prefix: str) -> dict[int, VisitLesion]:
    out = {}
    for rank in np.unique(labels[labels > 0]).tolist():
        out[rank] = VisitLesion(
            rank=rank,
            volume_ml=float((labels == rank).sum()) * VOXEL_ML,
            centroid_mm_lps=(0.0, 0.0, 0.0),
            location=Location.DEEP_WHITE_MATTER,
            tracking_uid=f"1.2.3.{prefix}.{rank}",
            tracking_id=f"L{rank}" if prefix == "p" else "",
        )
    return out


def _maps(
    current: np.ndarray,
    prior: np.ndarray,
    prior_probability: np.ndarray | None = None,
    rise: float = 2.0,
) -> VisitMaps:
    probability = (
        prior_probability if prior_probability is not None else (prior > 0).astype(np.float32)
    )
    return VisitMaps(
        current_labels=current,
        prior_labels=prior,
        prior_probability=probability,
        intensity_rise=np.full(SHAPE, rise, dtype=np.float32),
        spacing_mm=(1.0, 1.0, 1.0),
    )


def _run(
    current: np.ndarray, prior: np.ndarray, **kwargs: object
) -> dict[str, list[ChangeCategory]]:
    result = match_visits(
        _maps(current, prior, **kwargs),  # type: ignore[arg-type]
        _lesions(current, "c"),
        _lesions(prior, "p"),
        T,
        next_number=int(prior.max()) + 1,
    )
    by_uid: dict[str, list[ChangeCategory]] = {}
    for change in result.lesions:
        by_uid.setdefault(change.tracking_uid, []).append(change.category)
    return by_uid


def test_identical_visits_are_all_stable_and_keep_the_prior_identities() -> None:
    labels = np.zeros(SHAPE, dtype=np.int32)
    _box(labels, 1, 2, 2, 2, 6)
    _box(labels, 2, 10, 20, 20, 4)
    result = match_visits(_maps(labels, labels), _lesions(labels, "c"), _lesions(labels, "p"), T, 3)
    assert {c.category for c in result.lesions} == {ChangeCategory.STABLE}
    assert {c.tracking_uid for c in result.lesions} == {"1.2.3.p.1", "1.2.3.p.2"}
    assert {c.tracking_id for c in result.lesions} == {"L1", "L2"}
    assert (result.category_map[labels > 0] == CATEGORY_VALUE[ChangeCategory.STABLE]).all()
    assert result.next_number == 3


def test_a_lesion_far_from_any_prior_one_is_new_and_named_next() -> None:
    prior = np.zeros(SHAPE, dtype=np.int32)
    _box(prior, 1, 2, 2, 2, 6)
    current = prior.copy()
    _box(current, 2, 10, 25, 25, 5)
    result = match_visits(_maps(current, prior), _lesions(current, "c"), _lesions(prior, "p"), T, 2)
    new = [c for c in result.lesions if c.category == ChangeCategory.NEW]
    assert len(new) == 1
    assert new[0].tracking_uid == "1.2.3.c.2"  # keeps the UID its single-study SR gave it
    assert new[0].tracking_id == "L2"
    assert new[0].prior_volume_ml == 0.0
    assert (result.category_map[current == 2] == CATEGORY_VALUE[ChangeCategory.NEW]).all()


def test_a_lesion_the_prior_showed_below_threshold_is_not_new() -> None:
    prior = np.zeros(SHAPE, dtype=np.int32)
    current = prior.copy()
    _box(current, 1, 10, 25, 25, 5)
    probability = np.zeros(SHAPE, dtype=np.float32)
    probability[current == 1] = 0.45  # there before, just under the segmentation threshold
    assert _run(current, prior, prior_probability=probability) == {
        "1.2.3.c.1": [ChangeCategory.STABLE]
    }


def test_a_lesion_no_brighter_than_before_is_not_new() -> None:
    prior = np.zeros(SHAPE, dtype=np.int32)
    current = prior.copy()
    _box(current, 1, 10, 25, 25, 5)
    assert _run(current, prior, rise=0.0) == {"1.2.3.c.1": [ChangeCategory.STABLE]}


def test_growth_beyond_the_threshold_is_enlarging_and_keeps_the_identity() -> None:
    prior = np.zeros(SHAPE, dtype=np.int32)
    _box(prior, 1, 5, 5, 5, 5)  # 0.125 ml: a "large" lesion, 25 % rule
    current = np.zeros(SHAPE, dtype=np.int32)
    _box(current, 1, 5, 5, 5, 6)  # 0.216 ml: +73 %
    assert _run(current, prior) == {"1.2.3.p.1": [ChangeCategory.ENLARGING]}


def test_a_prior_lesion_with_nothing_near_it_now_has_disappeared() -> None:
    prior = np.zeros(SHAPE, dtype=np.int32)
    _box(prior, 1, 5, 5, 5, 4)
    current = np.zeros(SHAPE, dtype=np.int32)
    result = match_visits(_maps(current, prior), {}, _lesions(prior, "p"), T, 2)
    (gone,) = result.lesions
    assert gone.category == ChangeCategory.DISAPPEARED
    assert gone.current_label is None and gone.volume_ml == 0.0
    assert gone.prior_volume_ml == pytest.approx(0.064)


def test_two_prior_lesions_merging_keep_the_larger_identity_and_record_the_other() -> None:
    prior = np.zeros(SHAPE, dtype=np.int32)
    _box(prior, 1, 5, 5, 5, 5)
    _box(prior, 2, 5, 5, 12, 4)
    current = np.zeros(SHAPE, dtype=np.int32)
    current[5:10, 5:10, 5:16] = 1  # one lesion bridging both
    result = match_visits(_maps(current, prior), _lesions(current, "c"), _lesions(prior, "p"), T, 3)
    (merged,) = result.lesions
    assert merged.tracking_uid == "1.2.3.p.1"
    assert merged.merged_from == ["1.2.3.p.2"]
    assert merged.prior_labels == [1, 2]


def test_a_split_keeps_the_identity_on_the_larger_part() -> None:
    prior = np.zeros(SHAPE, dtype=np.int32)
    prior[5:10, 5:10, 5:20] = 1
    current = np.zeros(SHAPE, dtype=np.int32)
    current[5:10, 5:10, 5:13] = 1
    current[5:10, 5:10, 15:20] = 2
    result = match_visits(_maps(current, prior), _lesions(current, "c"), _lesions(prior, "p"), T, 2)
    by_label = {c.current_label: c for c in result.lesions}
    assert by_label[1].tracking_uid == "1.2.3.p.1"
    assert by_label[2].split_from == "1.2.3.p.1"
    assert by_label[2].tracking_id == "L2"
    assert {c.category for c in result.lesions} == {ChangeCategory.STABLE}


@pytest.mark.parametrize(
    ("now", "before", "expected"),
    [
        (0.150, 0.090, ChangeCategory.ENLARGING),  # small lesion, +67 % >= 50 %
        (0.120, 0.090, ChangeCategory.STABLE),  # small lesion, +33 % < 50 %
        (0.520, 0.400, ChangeCategory.ENLARGING),  # large lesion, +30 % >= 25 %
        (0.460, 0.400, ChangeCategory.STABLE),  # large lesion, +15 %
        (0.030, 0.015, ChangeCategory.STABLE),  # +100 % but only 0.015 ml: noise
        (0.300, 0.400, ChangeCategory.SHRINKING),  # -25 % >= 20 % (the inverse of +25 %)
        (0.350, 0.400, ChangeCategory.STABLE),
    ],
)
def test_change_thresholds(now: float, before: float, expected: ChangeCategory) -> None:
    assert categorise(now, before, T) is expected


def _with_change(current: np.ndarray, prior: np.ndarray, change: np.ndarray) -> list[LesionChange]:
    maps = _maps(current, prior)
    maps.change_probability = change
    result = match_visits(
        maps, _lesions(current, "c"), _lesions(prior, "p"), T, next_number=int(prior.max()) + 1
    )
    return sorted(result.lesions, key=lambda c: c.current_label or 0)


def test_the_change_detector_makes_a_stable_lesion_enlarging_by_its_grown_rim() -> None:
    prior = np.zeros(SHAPE, dtype=np.int32)
    _box(prior, 1, 2, 2, 2, 6)  # 216 voxels
    current = prior.copy()
    current[2:8, 2:8, 8] = 1  # a 36-voxel rim: +17 %, under the 25 % rule
    change = np.zeros(SHAPE, dtype=np.float32)
    change[2:8, 2:8, 8] = 0.95
    (lesion,) = _with_change(current, prior, change)
    assert lesion.category is ChangeCategory.ENLARGING
    assert lesion.change_ml == pytest.approx(0.036)
    assert [e.value for e in lesion.evidence] == ["change_detector"]
    assert lesion.tracking_uid == "1.2.3.p.1"  # the identity is kept


def test_a_weak_or_small_detector_reading_leaves_the_volume_rules_in_charge() -> None:
    prior = np.zeros(SHAPE, dtype=np.int32)
    _box(prior, 1, 2, 2, 2, 6)
    current = prior.copy()
    change = np.zeros(SHAPE, dtype=np.float32)
    change[2:8, 2:8, 7] = T.change_probability - 0.05  # below the probability threshold
    change[2, 2, 2:4] = 0.99  # 2 voxels: 0.002 ml, below change_min_ml
    (lesion,) = _with_change(current, prior, change)
    assert lesion.category is ChangeCategory.STABLE
    assert lesion.evidence == [] and lesion.change_ml == pytest.approx(0.002)


def test_the_detector_makes_a_lesion_the_prior_hinted_at_new_but_adds_no_lesion() -> None:
    prior = np.zeros(SHAPE, dtype=np.int32)
    current = np.zeros(SHAPE, dtype=np.int32)
    _box(current, 1, 10, 20, 20, 4)
    hint = np.zeros(SHAPE, dtype=np.float32)
    hint[10:14, 20:24, 20:24] = 0.4  # the prior segmentation nearly called it: not new by rule
    maps = _maps(current, prior, prior_probability=hint)
    plain = match_visits(maps, _lesions(current, "c"), {}, T, next_number=1)
    assert [c.category for c in plain.lesions] == [ChangeCategory.STABLE]
    maps.change_probability = np.zeros(SHAPE, dtype=np.float32)
    maps.change_probability[10:14, 20:24, 20:24] = 0.97
    maps.change_probability[0:3, 30:33, 30:33] = 0.99  # change outside any current lesion
    read = match_visits(maps, _lesions(current, "c"), {}, T, next_number=1)
    (lesion,) = read.lesions
    assert lesion.category is ChangeCategory.NEW and lesion.prior_volume_ml == 0.0
    assert read.category_map[10, 20, 20] == CATEGORY_VALUE[ChangeCategory.NEW]
    assert read.category_map[1, 31, 31] == 0
