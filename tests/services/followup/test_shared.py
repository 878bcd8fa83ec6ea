"""One model for both visits: the plan, and lesions carried across a re-analysis."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from mslesion.services.errors import InputError
from mslesion.services.followup.model import ChangeCategory as C
from mslesion.services.followup.shared import (
    carry_over,
    correspondence,
    plan_shared_model,
    ranks_for_record,
    repeated_reading,
)
from mslesion.services.reporting.json_report import SeriesUsed, StudyReport
from mslesion.services.segmentation.catalogue import ModelSet
from tests.services.store.followup_rows import change, report

SHIPPED = Path(__file__).resolve().parents[3] / "models" / "shipped"


def _study(model: str, roles: tuple[str, ...]) -> StudyReport:
    name, version = model.split(" ")
    return StudyReport(
        created=dt.datetime.now(dt.UTC),
        study_instance_uid="1.2.3",
        model_name=name,
        model_version=version,
        series={r: SeriesUsed(series_instance_uid=f"1.2.3.{i}") for i, r in enumerate(roles)},
        lesion_count=0,
        total_lesion_volume_ml=0.0,
        brain_volume_ml=1200.0,
        lesions=[],
    )


@pytest.fixture(scope="module")
def models() -> ModelSet:
    return ModelSet(SHIPPED)


def _name(models: ModelSet, modalities: list[str]) -> str:
    (m,) = [m for m in models.manifests.values() if m.modalities == modalities]
    return f"{m.name} {m.version}"


def test_visits_read_by_one_model_need_nothing(models: ModelSet) -> None:
    both = _name(models, ["flair", "t1"])
    assert (
        plan_shared_model(_study(both, ("flair", "t1")), _study(both, ("flair", "t1")), models)
        is None
    )


def test_the_richer_visit_is_read_again_with_the_model_both_support(models: ModelSet) -> None:
    flair, flair_t1 = _name(models, ["flair"]), _name(models, ["flair", "t1"])
    plan = plan_shared_model(_study(flair, ("flair",)), _study(flair_t1, ("flair", "t1")), models)
    assert plan is not None
    assert plan.choice.manifest.modalities == ["flair"]
    assert plan.reanalyse == ("current",)
    assert f"both were read with {flair}" in plan.note and "re-analysed: current" in plan.note
    plan = plan_shared_model(_study(flair_t1, ("flair", "t1")), _study(flair, ("flair",)), models)
    assert plan is not None and plan.reanalyse == ("prior",)


def test_a_model_unknown_to_the_catalogue_is_read_again_too(models: ModelSet) -> None:
    """E.g. a prior analysed before an upgrade: both visits are read with today's model."""
    flair_t1 = _name(models, ["flair", "t1"])
    old = _study("ms-cascade-flair-t1 1.1.0", ("flair", "t1"))
    plan = plan_shared_model(old, _study(flair_t1, ("flair", "t1")), models)
    assert plan is not None and plan.reanalyse == ("prior",)
    assert plan.choice.manifest.modalities == ["flair", "t1"]


def test_correspondence_is_one_to_one_by_largest_overlap() -> None:
    source = np.zeros((1, 4, 12), np.int32)
    target = np.zeros_like(source)
    source[0, 0, 0:6] = 1  # one source lesion...
    target[0, 0, 0:2] = 1  # ...split in two by the other analysis: the larger part takes it
    target[0, 0, 3:7] = 2
    source[0, 2, 0:3] = 2  # a lesion the other analysis does not see
    source[0, 3, 8:12] = 3
    target[0, 3, 9:11] = 3
    assert correspondence(source, target) == {1: 2, 3: 3}
    with pytest.raises(InputError, match="different grids"):
        correspondence(source, target[:, :, :6])


def test_identities_follow_their_lesions_and_unseen_ones_get_fresh_ones() -> None:
    source = np.zeros((1, 2, 10), np.int32)
    target = np.zeros_like(source)
    source[0, 0, 0:4], source[0, 1, 5:9] = 1, 2
    target[0, 1, 4:9], target[0, 0, 1:3], target[0, 0, 6:8] = 1, 2, 3  # ranks reordered
    fresh = iter(["new-a", "new-b"])
    to_own = correspondence(target, source)
    carried = carry_over({1: "L1", 2: "L2"}, to_own, [1, 2, 3], lambda: next(fresh))
    assert carried == {1: "L2", 2: "L1", 3: "new-a"}


def test_identities_recorded_for_the_same_reading_come_first_and_are_never_doubled() -> None:
    fresh = iter(["new-a", "new-b"])
    # rank 3 is seen only by the re-analysis: an earlier comparison named it L9
    to_own = {1: 2, 2: 1}
    carried = carry_over(
        {1: "L1", 2: "L2"}, to_own, [1, 2, 3], lambda: next(fresh), recorded={3: "L9"}
    )
    assert carried == {1: "L2", 2: "L1", 3: "L9"}
    # a recorded identity is not given a second time through an own counterpart
    carried = carry_over({1: "L1"}, {1: 1, 2: 1}, [1, 2], lambda: next(fresh), recorded={2: "L1"})
    assert carried == {1: "new-a", 2: "L1"}


def test_a_recorded_reading_is_taken_only_when_the_re_analysis_repeats_it() -> None:
    recorded = {1: ("L1", 0.5), 2: ("L9", 0.02)}
    assert repeated_reading(recorded, {1: 0.502, 2: 0.0205, 3: 0.1}) == {1: "L1", 2: "L9"}
    assert repeated_reading(recorded, {1: 0.5}) == {}  # a recorded lesion is missing
    assert repeated_reading(recorded, {1: 0.6, 2: 0.02}) == {}  # another lesion at rank 1
    assert repeated_reading({}, {1: 0.5}) == {}


def test_the_record_uses_the_visits_own_ranks() -> None:
    followup = report(
        "1.2.1",
        "1.2.2",
        [
            change("u1", "L1", C.STABLE, 1, [2]),
            change("u2", "L2", C.NEW, 2),
            change("u3", "L3", C.DISAPPEARED, None, [1]),
        ],
    )
    recorded = ranks_for_record(followup, prior_map={2: 5}, current_map={1: 3})
    assert [(c.current_label, c.prior_labels) for c in recorded.lesions] == [
        (3, [5]),
        (None, []),  # seen only by the re-analysis: no own rank
        (None, []),
    ]
    assert ranks_for_record(followup, None, None) == followup
