"""The detection funnel: the stage at which each truth lesion is lost, and false lesions."""

from __future__ import annotations

import numpy as np

from mslesion.devtools.funnel import (
    CaseFunnel,
    LesionFate,
    Stage,
    funnel_table,
    lesion_fates,
    reported_lesions,
)

SHAPE = (30, 30, 30)


def _cube(x: int, size: int = 3) -> np.ndarray:
    mask = np.zeros(SHAPE, dtype=bool)
    mask[x : x + size, 10 : 10 + size, 10 : 10 + size] = True
    return mask


def test_each_lesion_is_lost_at_the_first_stage_without_any_of_its_voxels() -> None:
    outside, rejected, found, tiny = _cube(1), _cube(7), _cube(13), _cube(20, size=1)
    truth = outside | rejected | found | tiny
    everywhere = np.ones(SHAPE, dtype=bool)
    region = ~outside
    net1 = found | rejected
    net1[7, 10, 10] = True  # one voxel of `rejected` passes net 1 ...
    net2 = found.copy()  # ... and none passes net 2
    survivors = {
        Stage.REGION: region,
        Stage.CANDIDATE: everywhere,
        Stage.NET1: net1,
        Stage.NET2: net2,
        Stage.SIZE_RULE: net2,
    }
    prob = np.where(found, 0.9, 0.2).astype(np.float32)
    fates = lesion_fates(truth, survivors, prob, floor=5, voxel_ml=0.001)
    # The 1-voxel lesion is below the reporting floor: no model could report it.
    assert [f.lost_at for f in fates] == [Stage.REGION, Stage.NET2, Stage.REPORTED]
    assert [f.volume_ml for f in fates] == [0.027] * 3
    assert fates[2].max_prob == 0.9


def test_a_lesion_that_passes_net_2_in_too_few_voxels_is_lost_at_the_size_rule() -> None:
    truth = _cube(5)
    net2 = np.zeros(SHAPE, dtype=bool)
    net2[5, 10, 10] = True
    everywhere = np.ones(SHAPE, dtype=bool)
    survivors = {s: everywhere for s in (Stage.REGION, Stage.CANDIDATE, Stage.NET1)}
    survivors |= {Stage.NET2: net2, Stage.SIZE_RULE: np.zeros(SHAPE, dtype=bool)}
    (fate,) = lesion_fates(truth, survivors, net2.astype(np.float32), floor=1, voxel_ml=0.001)
    assert fate.lost_at is Stage.SIZE_RULE


def test_false_lesions_are_those_touching_no_truth_voxel() -> None:
    truth = _cube(2)
    reported = _cube(3) | _cube(20)  # one overlaps the truth, one is separate
    prob = np.where(_cube(20), 0.62, 0.95).astype(np.float32)
    assert reported_lesions(reported, truth, prob) == (1, [0.62])


def test_the_table_counts_lesions_per_size_and_stage() -> None:
    fates = [
        LesionFate(volume_ml=0.01, lost_at=Stage.NET1, max_prob=0.1),
        LesionFate(volume_ml=0.02, lost_at=Stage.REPORTED, max_prob=0.9),
        LesionFate(volume_ml=2.0, lost_at=Stage.REPORTED, max_prob=0.99),
    ]
    case = CaseFunnel(
        case="c", reporting_floor_voxels=10, lesions=fates, false_lesion_max_prob=[],
        true_reported_lesions=2,
    )  # fmt: skip
    table = funnel_table([case])
    assert "| 0.0–0.03 ml | 2 | 0 | 0 | 1 | 0 | 0 | 1 |" in table
    assert "| ≥ 0.3 ml | 1 | 0 | 0 | 0 | 0 | 0 | 1 |" in table
