"""Cross-site evaluation: operating points (thresholds × minimum lesion sizes), the table,
the folds of the pooled cross-validation, and ensembles of models."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from mslesion.devtools.crosssite import (
    RecipeOptions,
    Site,
    fine_tune_splits,
    markdown_table,
    operating_points,
    pooled_folds,
    recipe_config,
    score_ensemble,
    score_model,
    summaries,
)
from mslesion.devtools.metrics import evaluate_case
from mslesion.devtools.prepare import PreparedCase
from mslesion.services.errors import InputError


def test_each_threshold_is_scored_with_the_manifests_and_the_swept_lesion_sizes() -> None:
    # 10 voxels of 1 mm³ computed in floating point is not exactly 0.01: it must not appear
    # as a second, nearly equal size.
    points = operating_points(10 * 0.001, t_bins=(0.5, 0.7), l_mins_ml=(0.01, 0.03))
    assert points == [(0.5, 0.01), (0.5, 0.03), (0.7, 0.01), (0.7, 0.03)]
    assert operating_points(0.02, t_bins=(0.5,), l_mins_ml=(0.01,)) == [(0.5, 0.01), (0.5, 0.02)]


def test_a_recipe_trains_with_the_evaluations_epochs_and_early_stopping() -> None:
    shipped = recipe_config("full+smooth", ["flair", "t1"], RecipeOptions())
    assert (shipped.train.max_epochs, shipped.train.patience) == (6, 2)
    longer = recipe_config(
        "full+smooth", ["flair", "t1"], RecipeOptions(max_epochs=12, patience=4, seed=43)
    )
    assert (longer.train.max_epochs, longer.train.patience, longer.train.seed) == (12, 4, 43)
    # Only the schedule differs: the recipe itself is the same.
    assert dataclasses.replace(longer, train=shipped.train) == shipped


def _case(found_voxels: int) -> list:
    truth = np.zeros((20, 20, 20), np.uint8)
    truth[2:6, 2:6, 2:6] = 1
    pred = np.zeros_like(truth)
    pred.flat[np.flatnonzero(truth)[:found_voxels]] = 1
    return [evaluate_case(pred, truth, 0.001, "c1")]


def test_the_table_shows_the_requested_operating_point_only() -> None:
    scores = summaries("m", "site", {(0.5, 0.01): _case(64), (0.5, 0.03): _case(16)})
    assert [s.l_min_ml for s in scores] == [0.01, 0.03]
    at_shipped = markdown_table(scores, t_bin=0.5, l_min_ml=0.01)
    at_larger = markdown_table(scores, t_bin=0.5, l_min_ml=0.03)
    whole, quarter = "| site | c1 | m | 1.000 |", "| site | c1 | m | 0.400 |"
    assert whole in at_shipped and quarter not in at_shipped
    assert quarter in at_larger and whole not in at_larger


def _prepared(name: str) -> PreparedCase:
    folder = Path(f"/prepared/{name}")
    return PreparedCase(name, folder, ("flair", "t1"), folder / "f.nii.gz", folder / "m.nii.gz")


def test_pooled_folds_hold_every_patient_once_and_every_site_in_each_fold() -> None:
    first = Site("open-ms", tuple(_prepared(n) for n in ("p26", "p07", "p19")))
    second = Site("insights-ms", tuple(_prepared(f"{n}") for n in range(101, 110)))
    folds = pooled_folds([first, second], ["flair", "t1"], 3)
    names = [c.name for fold in folds for c in fold]
    assert sorted(names) == sorted(c.name for s in (first, second) for c in s.cases)
    assert len(names) == len(set(names)) == 12
    for fold in folds:
        assert len(fold) == 4
        assert {c.name for c in fold} & {c.name for c in first.cases}
        assert {c.name for c in fold} & {c.name for c in second.cases}
    flair_only = Site("flair-only", (PreparedCase("x", Path("/x"), ("flair",), Path(), Path()),))
    assert "x" not in {c.name for f in pooled_folds([flair_only, first], ["flair", "t1"], 2)
                       for c in f}  # fmt: skip
    with pytest.raises(InputError):
        pooled_folds([first], ["flair"], 1)


SHIPPED = Path(__file__).resolve().parents[2] / "models" / "shipped"


def test_an_ensemble_of_one_model_twice_scores_as_the_model(prepared: PreparedCase) -> None:
    points = {"t_bins": [0.5], "l_mins_ml": [0.01]}
    alone = score_model(SHIPPED / "flair_t1", [prepared], **points)
    twice = score_ensemble([SHIPPED / "flair_t1"] * 2, [prepared], **points)
    assert twice == alone
    (cases,) = alone.values()
    assert cases[0].dice > 0.3  # the shipped model on one of the cases it was trained on


def test_an_ensemble_needs_members_that_read_the_same_inputs(prepared: PreparedCase) -> None:
    with pytest.raises(InputError, match="at least one model"):
        score_ensemble([], [prepared])
    with pytest.raises(InputError, match="other inputs or thresholds"):
        score_ensemble([SHIPPED / "flair_t1", SHIPPED / "flair"], [prepared])


def _named(*names: str) -> list[PreparedCase]:
    return [_prepared(n) for n in names]


def test_a_fine_tuning_curve_never_scores_a_case_it_tuned_on() -> None:
    cases = _named("a", "b", "c", "d", "e", "f")
    (split,) = fine_tune_splits(cases, max_k=4, seed=42)
    assert len(split.local) == 4 and len(split.held_out) == 2
    assert {c.name for c in split.local}.isdisjoint(c.name for c in split.held_out)
    assert fine_tune_splits(cases, max_k=4, seed=42) == [split]  # the seed fixes the order


def test_a_small_site_holds_out_each_case_in_turn() -> None:
    cases = _named("patient07", "patient19", "patient26")
    splits = fine_tune_splits(cases, max_k=2, seed=42, rotate=True)
    assert [s.held_out[0].name for s in splits] == ["patient07", "patient19", "patient26"]
    for split in splits:
        assert len(split.held_out) == 1 and len(split.local) == 2
        assert split.held_out[0].name not in {c.name for c in split.local}
    assert len({s.name for s in splits}) == 3  # each split's models get their own folder


def test_a_split_that_leaves_nothing_to_score_is_refused() -> None:
    with pytest.raises(InputError, match="3 cases cannot give 3"):
        fine_tune_splits(_named("a", "b", "c"), max_k=3, seed=42, rotate=True)
    with pytest.raises(InputError):
        fine_tune_splits(_named("a", "b"), max_k=2, seed=42)
