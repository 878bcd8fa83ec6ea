"""How far FLAIR change alone can carry a new/enlarging reader on open-ms/longitudinal.

The follow-up reading's sensitivity target (issue 10: ≥ 0.8 of the reference change lesions at
≤ 2 false new lesions per pair) is far from what the product reaches (0.25 and 0.18). This
measures a ceiling for any reader that judges change by how much brighter the FLAIR became,
without a model: every place of the brain where the later FLAIR rose significantly becomes a
candidate, candidates are ranked by the strength of the rise, and the question is how many of
them a reader must flag to reach a given sensitivity.

In the common space of the reference (each raw visit pulled there through its given affine,
N4-corrected inside the reference brain mask, divided by its brain median, as
:func:`mslesion.devtools.followup_eval.reference_lesions` does):

1. the difference current − prior is smoothed in-plane (σ 1 voxel; the slices are 3–4 mm);
   its slowly varying part (normalised Gaussian, σ 2 slices × 10 voxels, inside the brain) is
   removed, so a residual bias field between sessions does not read as change;
2. noise: the robust SD (1.4826 × MAD) of that map in the brain eroded by 2 voxels;
3. candidates: 26-connected clusters, inside the eroded brain, of voxels that rose by more
   than ``z`` noise SDs and whose smoothed current FLAIR is above the brain median (a new or
   growing lesion is bright now); optionally only inside a region (e.g. where either visit's
   lesion probability reaches 0.1, as LST's longitudinal pipeline reads change only inside
   the fused lesion maps);
4. rank: the cluster's summed rise over its noise, Σ Δ / (σ √n) (a cluster-mass statistic).

A reference lesion counts as found at the rank of the first candidate touching it. Only the
reference lesions that are brighter at the later visit are counted (the reference marks change
both ways; docs/FOLLOWUP.md). The parameters were fixed before the ranks were read and are not
tuned: the point is the number of candidates, not a detector.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel
from scipy import ndimage

from mslesion.services.segmentation.lesions import label_lesions

IN_PLANE_SIGMA = (0.0, 1.0, 1.0)  # (slices, rows, columns) in voxels
BACKGROUND_SIGMA = (2.0, 10.0, 10.0)
EDGE_EROSION = 2
TOP_K = (2, 5, 10, 50)
SENSITIVITIES = (0.5, 0.8)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


class CandidateRanking(BaseModel):
    """How many FLAIR-rise candidates a reader must flag for each sensitivity, one pair."""

    patient: str
    region: str  # "brain" or a named restriction
    z: float
    noise_sd: float
    candidates: int
    increasing_reference: int
    found_at_rank: list[int]  # 1-based rank at which each increasing reference lesion is found
    missed: int  # increasing reference lesions no candidate touches
    sensitivity_at: dict[int, float]  # flagging the top k candidates
    false_at: dict[int, int]  # candidates among the top k touching no reference change
    candidates_for: dict[str, int | None]  # sensitivity -> candidates to flag (None: never)


@dataclass(frozen=True)
class Pair:
    """Both visits in the common space, brain-median scaled, with the reference."""

    prior: FloatArray
    current: FloatArray
    brain: BoolArray
    reference: BoolArray


def rise_map(pair: Pair) -> tuple[FloatArray, float, BoolArray]:
    """(in-plane smoothed, detrended FLAIR rise; its noise SD; the eroded brain)."""
    inner = ndimage.binary_erosion(pair.brain, iterations=EDGE_EROSION)
    rise = ndimage.gaussian_filter(pair.current - pair.prior, IN_PLANE_SIGMA)
    weight = pair.brain.astype(np.float64)
    trend = ndimage.gaussian_filter(rise * weight, BACKGROUND_SIGMA) / np.maximum(
        ndimage.gaussian_filter(weight, BACKGROUND_SIGMA), 1e-3
    )
    rise = rise - trend
    values = rise[inner]
    noise = 1.4826 * float(np.median(np.abs(values - np.median(values))))
    return rise, noise, inner


def candidates(
    pair: Pair, z: float, region: BoolArray | None = None
) -> tuple[npt.NDArray[np.int32], FloatArray, float]:
    """(candidate labels, each label's score — index 0 unused —, noise SD)."""
    rise, noise, inner = rise_map(pair)
    bright_now = ndimage.gaussian_filter(pair.current, IN_PLANE_SIGMA) > 1.0
    where = inner & (rise > z * noise) & bright_now
    if region is not None:
        where &= region
    labels, n = label_lesions(where)
    index = np.arange(1, n + 1)
    size = ndimage.sum_labels(np.ones_like(rise), labels, index)
    mass = ndimage.sum_labels(rise, labels, index)
    score = np.zeros(n + 1)
    score[1:] = mass / (noise * np.sqrt(np.maximum(size, 1.0)))
    return labels, score, noise


def increasing_reference(pair: Pair) -> tuple[npt.NDArray[np.int32], set[int]]:
    """Reference change lesions (26-connected) and the labels of those brighter now."""
    labels, n = label_lesions(pair.reference)
    rise = pair.current - pair.prior
    mean = ndimage.mean(rise, labels, np.arange(1, n + 1))
    return labels, {i + 1 for i, m in enumerate(np.atleast_1d(mean)) if m > 0}


def rank_found(
    labels: npt.NDArray[np.int32],
    score: FloatArray,
    reference: npt.NDArray[np.int32],
    increasing: set[int],
) -> tuple[list[int], list[bool]]:
    """Candidates ranked by score against the reference.

    Returns the rank at which each increasing reference lesion is first touched, and, per
    ranked candidate, whether it touches any reference change.
    """
    order = np.argsort(-score[1:], kind="stable") + 1
    touching: dict[int, set[int]] = {}
    both = (labels > 0) & (reference > 0)
    for cand, ref in zip(labels[both].tolist(), reference[both].tolist(), strict=True):
        touching.setdefault(cand, set()).add(ref)
    found: list[int] = []
    seen: set[int] = set()
    true: list[bool] = []
    for rank, cand in enumerate(order.tolist(), start=1):
        refs = touching.get(cand, set())
        true.append(bool(refs))
        for ref in sorted(refs & increasing - seen):
            seen.add(ref)
            found.append(rank)
    return found, true


def rank_pair(
    pair: Pair, patient: str, z: float, region: BoolArray | None = None, region_name: str = "brain"
) -> CandidateRanking:
    """The ranking of one pair's FLAIR-rise candidates against its increasing reference."""
    labels, score, noise = candidates(pair, z, region)
    reference, increasing = increasing_reference(pair)
    found, true = rank_found(labels, score, reference, increasing)
    total = len(increasing)
    return CandidateRanking(
        patient=patient,
        region=region_name,
        z=z,
        noise_sd=round(noise, 4),
        candidates=int(score.size - 1),
        increasing_reference=total,
        found_at_rank=found,
        missed=total - len(found),
        sensitivity_at={k: _share(sum(r <= k for r in found), total) for k in TOP_K},
        false_at={k: int(sum(not t for t in true[:k])) for k in TOP_K},
        candidates_for={str(s): _needed(found, total, s) for s in SENSITIVITIES},
    )


def _share(found: int, total: int) -> float:
    return round(found / total, 3) if total else 1.0


def _needed(found: Sequence[int], total: int, sensitivity: float) -> int | None:
    """Candidates to flag before ``sensitivity`` of ``total`` is reached (None: never)."""
    want = int(np.ceil(sensitivity * total))
    return found[want - 1] if 0 < want <= len(found) else (0 if want == 0 else None)
