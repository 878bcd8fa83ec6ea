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
from scipy import ndimage

from mslesion.devtools.crosssite import cascade_case
from mslesion.devtools.prepare import PreparedCase, native_truth, to_native
from mslesion.services.imaging.units import voxel_volume_ml_from_spacing
from mslesion.services.pipeline import binarise_native, reporting_floor
from mslesion.services.segmentation.cascade import CascadeModel
from mslesion.services.segmentation.lesions import label_lesions

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


def _lesions(mask: np.ndarray) -> list[tuple[int, tuple[slice, ...], np.ndarray]]:
    """Each 26-connected lesion: its label, bounding box and voxels inside that box."""
    labels, _ = label_lesions(mask)
    boxes = ndimage.find_objects(labels)
    return [(k, box, labels[box] == k) for k, box in enumerate(boxes, start=1) if box]


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
    fates = []
    for _, box, voxels in _lesions(truth):
        size = int(voxels.sum())
        if size < floor:
            continue
        lost = next(
            (s for s, alive in survivors.items() if not alive[box][voxels].any()), Stage.REPORTED
        )
        fates.append(
            LesionFate(
                volume_ml=round(size * voxel_ml, 4),
                lost_at=lost,
                max_prob=round(float(prob[box][voxels].max()), 3),
            )
        )
    return fates


def reported_lesions(
    reported: np.ndarray, truth: np.ndarray, prob: np.ndarray
) -> tuple[int, list[float]]:
    """How many reported lesions touch the truth; the peak probability of each that does not."""
    true, false = 0, []
    for _, box, voxels in _lesions(reported):
        if truth[box][voxels].any():
            true += 1
        else:
            false.append(round(float(prob[box][voxels].max()), 3))
    return true, sorted(false)


def _stage_maps(
    model: CascadeModel, case: PreparedCase
) -> tuple[dict[Stage, np.ndarray], np.ndarray]:
    """Region, candidates and net 1's flags on the native grid, and the final probability."""
    out, roi = cascade_case(model, case)
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
    true, false = reported_lesions(reported, truth, prob)
    return CaseFunnel(
        case=case.name,
        reporting_floor_voxels=floor,
        lesions=lesion_fates(truth, survivors, prob, floor, voxel_ml),
        false_lesion_max_prob=false,
        true_reported_lesions=true,
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
