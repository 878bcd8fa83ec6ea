"""Where a model loses true lesions: region, candidate rule, net 1, net 2, size rule.

Every truth lesion the node could report (at least the reporting floor in acquired voxels)
is followed through the cascade's stages on the native grid; the first stage at which none
of its voxels survives is where it is lost. Reported false lesions (touching no truth voxel)
are listed by the peak probability they carry, to show what a threshold could separate.
Run it with ``scripts/detection_funnel.py``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from enum import StrEnum

import numpy as np
from pydantic import BaseModel

from mslesion.devtools.crosssite import case_wm_prior, load_case_images
from mslesion.devtools.prepare import PreparedCase, native_truth, to_native
from mslesion.services.imaging.units import voxel_volume_ml_from_spacing
from mslesion.services.pipeline import binarise_native, reporting_floor
from mslesion.services.segmentation.cascade import CascadeModel
from mslesion.services.segmentation.lesions import label_lesions
from mslesion.services.segmentation.prior import (
    WM_PRIOR_DILATE_MM,
    WM_PRIOR_THRESHOLD,
    white_matter_roi,
)

SIZE_BINS_ML = (0.0, 0.03, 0.1, 0.3, float("inf"))


class Stage(StrEnum):
    """The cascade's stages in order; ``REPORTED`` means the lesion survived them all."""

    REGION = "region"  # the registered template's white-matter region
    CANDIDATE = "candidate"  # standardised FLAIR above the candidate threshold
    NET1 = "net1"
    NET2 = "net2"  # final probability at t_bin
    SIZE_RULE = "size_rule"  # l_min in model voxels and in acquired voxels
    REPORTED = "reported"


class LesionFate(BaseModel):
    """One reportable truth lesion: its volume, where it was lost, its peak probability."""

    volume_ml: float
    lost_at: Stage
    max_prob: float


class CaseFunnel(BaseModel):
    """One case: each reportable truth lesion's fate and the false lesions' peak probability."""

    case: str
    reporting_floor_voxels: int
    lesions: list[LesionFate]
    false_lesion_max_prob: list[float]
    true_reported_lesions: int


def lesion_fates(
    truth: np.ndarray,
    survivors: Mapping[Stage, np.ndarray],
    prob: np.ndarray,
    floor: int,
    voxel_ml: float,
) -> list[LesionFate]:
    """The stage at which each truth lesion of at least ``floor`` voxels loses its last voxel.

    ``survivors`` maps each stage before ``REPORTED``, in order, to its surviving voxels.
    """
    labels, n = label_lesions(truth)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    fates = []
    for k in range(1, n + 1):
        if sizes[k] < floor:
            continue
        voxels = labels == k
        lost = next((s for s, alive in survivors.items() if not alive[voxels].any()), None)
        fates.append(
            LesionFate(
                volume_ml=round(float(sizes[k]) * voxel_ml, 4),
                lost_at=lost or Stage.REPORTED,
                max_prob=round(float(prob[voxels].max()), 3),
            )
        )
    return fates


def false_lesion_peaks(reported: np.ndarray, truth: np.ndarray, prob: np.ndarray) -> list[float]:
    """Peak probability of each reported lesion that touches no truth voxel, ascending."""
    labels, n = label_lesions(reported)
    touching = set(np.unique(labels[reported & truth]).tolist())
    return sorted(
        round(float(prob[labels == j].max()), 3) for j in range(1, n + 1) if j not in touching
    )


def _stage_maps(
    model: CascadeModel, case: PreparedCase
) -> tuple[dict[Stage, np.ndarray], np.ndarray]:
    """Region, candidates and net 1's flags on the native grid, and the final probability."""
    prior = case_wm_prior(case)
    roi = white_matter_roi(prior, WM_PRIOR_THRESHOLD, WM_PRIOR_DILATE_MM)
    out = model.predict(
        load_case_images(case, model.manifest.modalities), restrict=roi, wm_prior=prior
    )
    maps = {
        Stage.REGION: to_native(case, (roi & out.brain).astype(np.float32)) >= 0.5,
        Stage.CANDIDATE: to_native(case, out.candidates.astype(np.float32)) >= 0.5,
        Stage.NET1: to_native(case, out.prob1 * out.candidates) > model.manifest.thresholds.net1,
    }
    return maps, to_native(case, out.prob)


def funnel_case(model: CascadeModel, case: PreparedCase) -> CaseFunnel:
    """Segment a prepared case as the pipeline does and follow its truth lesions through."""
    th = model.manifest.thresholds
    truth, voxel_ml = native_truth(case)
    survivors, prob = _stage_maps(model, case)
    l_min_ml = th.l_min * voxel_volume_ml_from_spacing(model.manifest.spacing_mm)
    floor = reporting_floor(l_min_ml, voxel_ml, th.l_min)
    reported = binarise_native(prob, th.t_bin, l_min_ml, voxel_ml, th.l_min) > 0
    survivors[Stage.NET2] = prob >= th.t_bin
    survivors[Stage.SIZE_RULE] = reported
    fates = lesion_fates(truth, survivors, prob, floor, voxel_ml)
    false = false_lesion_peaks(reported, truth, prob)
    _, n = label_lesions(reported)
    return CaseFunnel(
        case=case.name,
        reporting_floor_voxels=floor,
        lesions=fates,
        false_lesion_max_prob=false,
        true_reported_lesions=n - len(false),
    )


def funnel_table(cases: Sequence[CaseFunnel]) -> str:
    """Markdown: truth lesions per size bin and the stage at which they are lost."""
    lost = [s for s in Stage if s is not Stage.REPORTED]
    rows = [
        "| truth lesion size | lesions | "
        + " | ".join(f"lost at {s.value}" for s in lost)
        + " | reported |",
        "|---" * (len(Stage) + 2) + "|",
    ]
    fates = [f for c in cases for f in c.lesions]
    for lo, hi in itertools.pairwise(SIZE_BINS_ML):
        inside = [f for f in fates if lo <= f.volume_ml < hi]
        counts = [sum(1 for f in inside if f.lost_at is s) for s in Stage]
        label = f"≥ {lo} ml" if hi == float("inf") else f"{lo}–{hi} ml"
        rows.append(f"| {label} | {len(inside)} | " + " | ".join(map(str, counts)) + " |")
    return "\n".join(rows) + "\n"
