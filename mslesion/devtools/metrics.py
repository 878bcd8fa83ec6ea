"""Agreement metrics between predicted and reference (truth) lesion masks.

Used by ``mslesion evaluate``. Voxel-wise overlap (Dice), lesion-wise detection (true
positive rate, precision, F1) and lesion-load agreement (volumes, absolute volume
difference, volume correlation across cases), as reported in the MS lesion segmentation
literature (Valverde et al. 2017; the MICCAI 2016 MSSEG challenge).

Conventions:

* Masks are binarised with ``> 0``; NaN voxels count as background.
* A lesion is a 26-connected component (3x3x3 structuring element).
* A lesion is detected when it shares at least one voxel with the other mask.
* Metrics whose definition divides by zero are ``float("nan")``, except Dice, which is
  ``1.0`` when both masks are empty (perfect agreement on "no lesion") and ``0.0`` when
  exactly one is. NaN is left out of the means (``nanmean``) and written as ``null`` by
  ``model_dump_json`` (pydantic's default), as ``n/a`` by :func:`format_table`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Final

import nibabel as nib
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from scipy import ndimage

from mslesion.services.errors import InputError

AFFINE_ATOL: Final = 1e-4
"""Absolute tolerance (mm) when checking that prediction and truth share their affine."""

_CONNECTIVITY_26: Final = np.ones((3, 3, 3), dtype=bool)
_NIFTI_SUFFIXES: Final = (".nii.gz", ".nii")


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


def voxel_volume_ml(affine: npt.ArrayLike) -> float:
    """Return the volume of one voxel in millilitres from a 4x4 voxel-to-mm affine.

    Raises:
        InputError: when the affine is not 4x4 or its voxel volume is zero or not finite.
    """
    matrix = np.asarray(affine, dtype=np.float64)
    if matrix.shape != (4, 4):
        raise InputError(f"affine must be 4x4, got shape {matrix.shape}")
    volume = abs(float(np.linalg.det(matrix[:3, :3]))) / 1000.0  # mm^3 -> ml
    if not math.isfinite(volume) or volume <= 0.0:
        raise InputError(f"affine gives a voxel volume of {volume} ml: {matrix.tolist()}")
    return volume


def evaluate_case(
    pred: npt.ArrayLike, truth: npt.ArrayLike, voxel_volume_ml: float, case: str
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
        voxel_volume_ml: volume of one voxel in ml (1 mm isotropic: 0.001).
        case: name reported in the metrics.

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

    truth_labels, n_truth = ndimage.label(truth_mask, structure=_CONNECTIVITY_26)
    pred_labels, n_pred = ndimage.label(pred_mask, structure=_CONNECTIVITY_26)
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
    )


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


_COLUMNS: Final[tuple[tuple[str, str, str], ...]] = (
    # (metric, header, format of a per-case value)
    ("dice", "Dice", ".3f"),
    ("lesion_tpr", "LTPR", ".3f"),
    ("lesion_precision", "LPrec", ".3f"),
    ("lesion_f1", "LF1", ".3f"),
    ("n_truth_lesions", "nTruth", "d"),
    ("n_pred_lesions", "nPred", "d"),
    ("n_detected_lesions", "nDet", "d"),
    ("n_false_positive_lesions", "nFP", "d"),
    ("truth_volume_ml", "VTruth_ml", ".3f"),
    ("pred_volume_ml", "VPred_ml", ".3f"),
    ("abs_volume_difference_ml", "AVD_ml", ".3f"),
    ("abs_volume_difference_pct", "AVD_%", ".1f"),
)
_MEAN_ROW_NAME: Final = "MEAN"


def _format_value(value: float, spec: str) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if spec == "d" and isinstance(value, float):
        # Means of counts are fractional.
        return f"{value:.1f}"
    return format(value, spec)


def format_table(summary: EvaluationSummary) -> str:
    """Render a summary as a fixed-width plain-text table.

    One row per case, then a ``MEAN`` row (NaN-skipping means), then a line with the
    volume correlation. Undefined values print as ``n/a``.
    """
    header = ["case", *(title for _, title, _ in _COLUMNS)]
    rows: list[list[str]] = [
        [c.case, *(_format_value(getattr(c, name), spec) for name, _, spec in _COLUMNS)]
        for c in summary.cases
    ]
    rows.append(
        [
            _MEAN_ROW_NAME,
            *(_format_value(float(summary.mean[name]), spec) for name, _, spec in _COLUMNS),
        ]
    )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def render(cells: list[str]) -> str:
        # Case names left-aligned, numbers right-aligned so that decimals line up.
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    rule = "-" * len(render(["-" * w for w in widths]))
    lines = [render(header), rule, *(render(row) for row in rows[:-1]), rule, render(rows[-1])]
    if summary.volume_correlation is None:
        correlation = "n/a (needs at least 2 cases with varying volumes)"
    else:
        correlation = f"{summary.volume_correlation:.3f}"
    lines.append(f"Volume correlation (Pearson r, truth vs prediction): {correlation}")
    return "\n".join(lines)


def evaluate_files(
    pairs: Sequence[tuple[Path, Path]], case_names: Sequence[str] | None = None
) -> EvaluationSummary:
    """Evaluate NIfTI prediction masks against NIfTI truth masks.

    Args:
        pairs: ``(prediction, truth)`` file pairs, one per case.
        case_names: names of the cases, one per pair; by default the shortest trailing part
            of the truth paths (NIfTI suffix dropped) that tells the cases apart, e.g.
            ``patient07/lesion_mask``.

    Returns:
        The summary of all cases, in input order.

    Raises:
        InputError: when there are no pairs, a file cannot be read or is not a 3-D image,
            or a prediction and its truth differ in shape or affine (beyond
            ``AFFINE_ATOL`` mm); the message names both files.
    """
    if not pairs:
        raise InputError("no (prediction, truth) file pairs to evaluate")
    pair_list = [(Path(pred), Path(truth)) for pred, truth in pairs]
    if case_names is None:
        names = _default_case_names([truth for _, truth in pair_list])
    else:
        names = list(case_names)
        if len(names) != len(pair_list):
            raise InputError(
                f"got {len(names)} case names for {len(pair_list)} file pairs: {names}"
            )
    results: list[CaseMetrics] = []
    for (pred_path, truth_path), name in zip(pair_list, names, strict=True):
        pred, pred_affine = _load_mask(pred_path)
        truth, truth_affine = _load_mask(truth_path)
        if pred.shape != truth.shape:
            raise InputError(
                f"prediction {pred_path} has shape {pred.shape} but truth {truth_path} has "
                f"shape {truth.shape}"
            )
        if not np.allclose(pred_affine, truth_affine, rtol=0.0, atol=AFFINE_ATOL):
            raise InputError(
                f"prediction {pred_path} and truth {truth_path} are not on the same grid: "
                f"affines {pred_affine.tolist()} and {truth_affine.tolist()} differ by more "
                f"than {AFFINE_ATOL} mm"
            )
        results.append(evaluate_case(pred, truth, voxel_volume_ml(truth_affine), name))
    return summarise(results)


def _load_mask(path: Path) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
    """Read a NIfTI mask as booleans (``> 0``) and its affine."""
    try:
        image = nib.load(path)
    except (OSError, nib.filebasedimages.ImageFileError) as exc:
        raise InputError(f"cannot read NIfTI mask {path}: {exc}") from exc
    if not isinstance(image, nib.spatialimages.SpatialImage) or image.affine is None:
        raise InputError(f"{path} is not an image with a voxel-to-world affine")
    shape = tuple(int(n) for n in image.shape)
    # Some tools save 3-D masks as (X, Y, Z, 1).
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) != 3:
        raise InputError(f"mask {path} must be a 3-D image, got shape {tuple(image.shape)}")
    try:
        data = np.asanyarray(image.dataobj).reshape(shape)
    except (OSError, EOFError, ValueError) as exc:
        raise InputError(f"cannot read the voxels of NIfTI mask {path}: {exc}") from exc
    affine = np.asarray(image.affine, dtype=np.float64)
    return data > 0, affine


def _strip_nifti_suffix(name: str) -> str:
    for suffix in _NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _default_case_names(paths: Sequence[Path]) -> list[str]:
    """Shortest trailing path parts that make every name unique (suffix-stripped)."""
    parts = [(*p.parts[:-1], _strip_nifti_suffix(p.name)) for p in paths]
    depth = max(len(p) for p in parts)
    for keep in range(1, depth + 1):
        names = ["/".join(p[-keep:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    # The same file listed twice: number the duplicates rather than fail.
    names = ["/".join(p) for p in parts]
    return [f"{name}#{index}" for index, name in enumerate(names, start=1)]
