"""Agreement metrics between predicted and reference (truth) lesion masks: the maths only.

Used by ``mslesion evaluate`` (files are read by :mod:`mslesion.devtools.evaluation_io`,
the table is drawn by :mod:`mslesion.devtools.report_table`). Voxel-wise overlap (Dice),
lesion-wise detection (true positive rate, precision, F1) and lesion-load agreement
(volumes, absolute volume difference, volume correlation across cases), as reported in the
MS lesion segmentation literature (Valverde et al. 2017; the MICCAI 2016 MSSEG challenge).

Conventions:

* Masks are binarised with ``> 0``; NaN voxels count as background.
* A lesion is a 26-connected component, as the serving engine counts them
  (:mod:`mslesion.services.segmentation.lesions`).
* A lesion is detected when it shares at least one voxel with the other mask.
* Metrics whose definition divides by zero are ``float("nan")``, except Dice, which is
  ``1.0`` when both masks are empty (perfect agreement on "no lesion") and ``0.0`` when
  exactly one is. NaN is left out of the means (``nanmean``) and written as ``null`` by
  ``model_dump_json`` (pydantic's default), as ``n/a`` by
  :func:`mslesion.devtools.report_table.format_table`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Final

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from mslesion.services.errors import InputError
from mslesion.services.segmentation.lesions import label_lesions


def _none_to_nan(value: object) -> object:
    # JSON has no NaN: pydantic writes NaN as null, so null must read back as NaN.
    return math.nan if value is None else value


MaybeNan = Annotated[float, BeforeValidator(_none_to_nan)]
"""A float that is NaN where the metric is undefined; ``null`` in JSON."""


class CaseMetrics(BaseModel):
    """Metrics of one case (one predicted mask against its truth mask)."""

    model_config = ConfigDict(frozen=True)

    case: str = Field(description="Case name.")
    dice: float = Field(
        description="Voxel-wise Dice 2|P&T|/(|P|+|T|); 1.0 when both masks are empty."
    )
    lesion_tpr: MaybeNan = Field(
        description="Detected truth lesions / truth lesions; NaN without truth lesions."
    )
    lesion_precision: MaybeNan = Field(
        description="Predicted lesions overlapping truth / predicted lesions; NaN without "
        "predicted lesions."
    )
    lesion_f1: MaybeNan = Field(
        description="Harmonic mean of lesion_tpr and lesion_precision; 0.0 when exactly one "
        "mask has lesions, NaN when neither has."
    )
    n_truth_lesions: int = Field(ge=0, description="26-connected components of the truth.")
    n_pred_lesions: int = Field(ge=0, description="26-connected components of the prediction.")
    n_detected_lesions: int = Field(
        ge=0, description="Truth lesions overlapping the prediction (true positives)."
    )
    n_false_positive_lesions: int = Field(
        ge=0, description="Predicted lesions overlapping no truth lesion."
    )
    truth_volume_ml: float = Field(ge=0, description="Truth lesion load, ml.")
    pred_volume_ml: float = Field(ge=0, description="Predicted lesion load, ml.")
    abs_volume_difference_ml: float = Field(ge=0, description="|pred - truth| volume, ml.")
    abs_volume_difference_pct: MaybeNan = Field(
        description="|pred - truth| / truth volume x 100 (the challenges' AVD); NaN when the "
        "truth is empty."
    )
    n_truth_lesions_reportable: int = Field(
        default=0,
        ge=0,
        description="Truth lesions of at least the reporting floor (``min_truth_voxels`` of "
        "evaluate_case; 0 when not asked): those a segmentation with that minimum lesion "
        "size can report at all.",
    )
    lesion_tpr_reportable: MaybeNan = Field(
        default=math.nan,
        description="Detected / reportable truth lesions. A diagnostic beside lesion_tpr, "
        "which counts every truth lesion; NaN when not asked or none is reportable.",
    )
    lesion_f1_reportable: MaybeNan = Field(
        default=math.nan,
        description="Harmonic mean of lesion_tpr_reportable and lesion_precision.",
    )


NUMERIC_METRICS: Final[tuple[str, ...]] = tuple(
    name for name in CaseMetrics.model_fields if name != "case"
)
"""Names of the numeric fields of :class:`CaseMetrics`, in declaration order."""


class EvaluationSummary(BaseModel):
    """Metrics of every case, their means and the lesion-load correlation."""

    model_config = ConfigDict(frozen=True)

    cases: list[CaseMetrics] = Field(description="Per-case metrics, in input order.")
    mean: dict[str, MaybeNan] = Field(
        description="Mean of each numeric metric over the cases where it is defined (NaN "
        "skipped); NaN when it is defined for none."
    )
    volume_correlation: float | None = Field(
        description="Pearson r between truth and predicted volumes across cases; None with "
        "fewer than 2 cases or when either volume is the same in every case."
    )


def evaluate_case(
    pred: npt.ArrayLike,
    truth: npt.ArrayLike,
    voxel_volume_ml: float,
    case: str,
    min_truth_voxels: int = 0,
) -> CaseMetrics:
    """Compare one predicted lesion mask with its truth mask.

    Both arrays are binarised with ``> 0``. Lesions are 26-connected components; a truth
    lesion is detected, and a predicted lesion is a true positive, when it shares at least
    one voxel with the other mask. Undefined ratios are NaN, see the module docstring:

    * ``dice``: 1.0 when both masks are empty, 0.0 when exactly one is.
    * ``lesion_tpr``: NaN without truth lesions.
    * ``lesion_precision``: NaN without predicted lesions.
    * ``lesion_f1``: NaN when neither mask has lesions, 0.0 when exactly one has.
    * ``abs_volume_difference_pct``: NaN when the truth is empty.

    Args:
        pred: predicted mask, 3-D.
        truth: truth mask, 3-D, same shape as ``pred``.
        voxel_volume_ml: volume of one voxel in ml (1 mm isotropic: 0.001), e.g. from
            :func:`mslesion.services.imaging.units.voxel_volume_ml_from_affine`.
        case: name reported in the metrics.
        min_truth_voxels: the segmentation's reporting floor in voxels; when > 0 the
            ``*_reportable`` diagnostics count only truth lesions at least that large.

    Returns:
        The metrics of the case.

    Raises:
        InputError: when the arrays are not 3-D, differ in shape, or the voxel volume is
            not a positive finite number.
    """
    pred_array = np.asarray(pred)
    truth_array = np.asarray(truth)
    if pred_array.shape != truth_array.shape:
        raise InputError(
            f"case {case!r}: prediction shape {pred_array.shape} differs from truth shape "
            f"{truth_array.shape}"
        )
    if pred_array.ndim != 3:
        raise InputError(f"case {case!r}: masks must be 3-D, got shape {pred_array.shape}")
    if not math.isfinite(voxel_volume_ml) or voxel_volume_ml <= 0.0:
        raise InputError(
            f"case {case!r}: voxel_volume_ml must be positive and finite, got {voxel_volume_ml}"
        )
    pred_mask = pred_array > 0
    truth_mask = truth_array > 0

    pred_voxels = int(np.count_nonzero(pred_mask))
    truth_voxels = int(np.count_nonzero(truth_mask))
    overlap = pred_mask & truth_mask
    overlap_voxels = int(np.count_nonzero(overlap))
    total = pred_voxels + truth_voxels
    dice = 1.0 if total == 0 else 2.0 * overlap_voxels / total

    truth_labels, n_truth = label_lesions(truth_mask)
    pred_labels, n_pred = label_lesions(pred_mask)
    # A lesion overlaps the other mask iff its label occurs somewhere in the overlap.
    n_detected = int(np.unique(truth_labels[overlap]).size)
    n_true_positive_pred = int(np.unique(pred_labels[overlap]).size)

    tpr = n_detected / n_truth if n_truth else math.nan
    precision = n_true_positive_pred / n_pred if n_pred else math.nan
    if n_truth == 0 and n_pred == 0:
        f1 = math.nan
    elif n_truth == 0 or n_pred == 0 or tpr + precision == 0.0:
        # One side has lesions and the other none: nothing found or everything false.
        f1 = 0.0
    else:
        f1 = 2.0 * tpr * precision / (tpr + precision)

    reportable = _reportable(truth_labels, n_truth, overlap, min_truth_voxels, precision)
    truth_volume = truth_voxels * voxel_volume_ml
    pred_volume = pred_voxels * voxel_volume_ml
    # From voxel counts, so that equal masks give exactly 0 whatever the voxel size.
    abs_difference = abs(pred_voxels - truth_voxels) * voxel_volume_ml
    abs_difference_pct = (
        100.0 * abs(pred_voxels - truth_voxels) / truth_voxels if truth_voxels else math.nan
    )
    return CaseMetrics(
        case=case,
        dice=dice,
        lesion_tpr=tpr,
        lesion_precision=precision,
        lesion_f1=f1,
        n_truth_lesions=int(n_truth),
        n_pred_lesions=int(n_pred),
        n_detected_lesions=n_detected,
        n_false_positive_lesions=int(n_pred) - n_true_positive_pred,
        truth_volume_ml=truth_volume,
        pred_volume_ml=pred_volume,
        abs_volume_difference_ml=abs_difference,
        abs_volume_difference_pct=abs_difference_pct,
        **reportable,
    )


def _reportable(
    truth_labels: np.ndarray, n_truth: int, overlap: np.ndarray, floor: int, precision: float
) -> dict[str, float | int]:
    """The ``*_reportable`` fields: truth lesions of at least ``floor`` voxels only."""
    if floor <= 0:
        return {}
    sizes = np.bincount(truth_labels.ravel(), minlength=n_truth + 1)
    big = np.flatnonzero(sizes >= floor)
    big = big[big > 0]
    if not big.size:
        return {"n_truth_lesions_reportable": 0}
    found = np.isin(big, np.unique(truth_labels[overlap])).sum()
    tpr = float(found) / big.size
    f1 = (
        0.0
        if math.isnan(precision) or tpr + precision == 0
        else 2 * tpr * precision / (tpr + precision)
    )
    return {
        "n_truth_lesions_reportable": int(big.size),
        "lesion_tpr_reportable": tpr,
        "lesion_f1_reportable": f1,
    }


def summarise(cases: Sequence[CaseMetrics]) -> EvaluationSummary:
    """Average the per-case metrics and correlate the lesion loads.

    Each mean skips the cases where the metric is NaN (undefined) and is NaN only when the
    metric is undefined in every case. ``volume_correlation`` is the Pearson r of
    ``(truth_volume_ml, pred_volume_ml)`` over the cases; None with fewer than two cases or
    when either volume is identical in every case (r undefined).

    Raises:
        InputError: when ``cases`` is empty.
    """
    if not cases:
        raise InputError("no cases to summarise: got an empty list")
    mean: dict[str, float] = {}
    for name in NUMERIC_METRICS:
        values = np.array([float(getattr(c, name)) for c in cases], dtype=np.float64)
        defined = values[~np.isnan(values)]
        # Explicit instead of np.nanmean, which warns on an all-NaN column.
        mean[name] = float(defined.mean()) if defined.size else math.nan
    return EvaluationSummary(
        cases=list(cases), mean=mean, volume_correlation=_volume_correlation(cases)
    )


def _volume_correlation(cases: Sequence[CaseMetrics]) -> float | None:
    if len(cases) < 2:
        return None
    truth = np.array([c.truth_volume_ml for c in cases], dtype=np.float64)
    pred = np.array([c.pred_volume_ml for c in cases], dtype=np.float64)
    truth_dev = truth - truth.mean()
    pred_dev = pred - pred.mean()
    denominator = math.sqrt(float(truth_dev @ truth_dev) * float(pred_dev @ pred_dev))
    if denominator == 0.0:
        return None
    # Rounding can push |r| a hair above 1 for perfectly linear volumes.
    return max(-1.0, min(1.0, float(truth_dev @ pred_dev) / denominator))
