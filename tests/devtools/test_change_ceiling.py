"""The FLAIR-rise candidate ranking behind the follow-up sensitivity ceiling."""

from __future__ import annotations

import numpy as np
import pytest

from mslesion.devtools.change_ceiling import Pair, increasing_reference, rank_pair


def _pair(seed: int = 3) -> Pair:
    """A noisy slab, a broad bias bump on the later visit (a residual bias field between
    sessions), two lesions that grow (A strong, B faint) and one that fades (C)."""
    rng = np.random.default_rng(seed)
    shape = (16, 64, 64)
    brain = np.zeros(shape, bool)
    brain[2:14, 4:60, 4:60] = True
    prior = np.where(brain, 1.0 + rng.normal(0, 0.03, shape), 0.0)
    z, y, x = np.indices(shape)
    bump = 0.1 * np.exp(-(((y - 16) / 20.0) ** 2 + ((x - 48) / 20.0) ** 2) / 2)
    current = np.where(brain, 1.0 + bump + rng.normal(0, 0.03, shape), 0.0)
    reference = np.zeros(shape, bool)
    for (z, y, x), size, rise in (((6, 20, 20), 4, 0.6), ((9, 44, 44), 3, 0.35)):
        box = (slice(z, z + 2), slice(y, y + size), slice(x, x + size))
        current[box] += rise
        reference[box] = True
    fade = (slice(6, 8), slice(44, 48), slice(16, 20))
    prior[fade] += 0.6
    reference[fade] = True
    return Pair(prior=prior, current=current, brain=brain, reference=reference)


def test_only_lesions_brighter_now_count() -> None:
    labels, increasing = increasing_reference(_pair())
    assert labels.max() == 3 and len(increasing) == 2


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_growing_lesions_rank_first_despite_a_bias_bump(seed: int) -> None:
    # without removing the slowly varying part, the bump outranks lesion A
    ranking = rank_pair(_pair(seed), "synthetic", z=2.5)
    assert ranking.increasing_reference == 2 and ranking.missed == 0
    assert ranking.found_at_rank == [1, 2]
    assert ranking.sensitivity_at[2] == 1.0 and ranking.false_at[2] == 0
    assert ranking.candidates_for == {"0.5": 1, "0.8": 2}
    assert 0.01 < ranking.noise_sd < 0.03 * np.sqrt(2)  # smoothed below the raw difference


def test_a_region_that_leaves_a_lesion_out_misses_it() -> None:
    pair = _pair()
    region = np.zeros_like(pair.brain)
    region[:, :32, :32] = True  # holds A only
    ranking = rank_pair(pair, "synthetic", z=2.5, region=region, region_name="left")
    assert ranking.found_at_rank == [1] and ranking.missed == 1
    assert ranking.candidates_for == {"0.5": 1, "0.8": None}
    assert ranking.region == "left"
