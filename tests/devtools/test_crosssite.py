"""Operating points of the cross-site evaluation: thresholds × minimum lesion sizes."""

from __future__ import annotations

import numpy as np

from mslesion.devtools.crosssite import markdown_table, operating_points, summaries
from mslesion.devtools.metrics import evaluate_case


def test_each_threshold_is_scored_with_the_manifests_and_the_swept_lesion_sizes() -> None:
    # 10 voxels of 1 mm³ computed in floating point is not exactly 0.01: it must not appear
    # as a second, nearly equal size.
    points = operating_points(10 * 0.001, t_bins=(0.5, 0.7), l_mins_ml=(0.01, 0.03))
    assert points == [(0.5, 0.01), (0.5, 0.03), (0.7, 0.01), (0.7, 0.03)]
    assert operating_points(0.02, t_bins=(0.5,), l_mins_ml=(0.01,)) == [(0.5, 0.01), (0.5, 0.02)]


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
