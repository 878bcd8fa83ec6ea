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
from typing import Final

import nibabel as nib
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field
from scipy import ndimage

from services.errors import InputError

AFFINE_ATOL: Final = 1e-4
"""Absolute tolerance (mm) when checking that prediction and truth share their affine."""

_CONNECTIVITY_26: Final = np.ones((3, 3, 3), dtype=bool)
_NIFTI_SUFFIXES: Final = (".nii.gz", ".nii")


class CaseMetrics(BaseModel):
    """Metrics of one case (one predicted mask against its truth mask)."""

    model_config = ConfigDict(frozen=True)

    case: str = Field(description="Case name.")
    dice: float = Field(
        description="Voxel-wise Dice 2|P&T|/(|P|+|T|); 1.0 when both masks are empty."
    )
    lesion_tpr: float = Field(
        description="Detected truth lesions / truth lesions; NaN without truth lesions."
    )
    lesion_precision: float = Field(
        description="Predicted lesions overlapping truth / predicted lesions; NaN without "
        "predicted lesions."
    )
    lesion_f1: float = Field(
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
    abs_volume_difference_pct: float = Field(
        description="|pred - truth| / truth volume x 100 (the challenges' AVD); NaN when the "
        "truth is empty."
    )


NUMERIC_METRICS: Final[tuple[str, ...]] = tuple(
    name for name in CaseMetrics.model fields if name != "case"
) if False else ()  # placeholder replaced below


class EvaluationSummary(BaseModel):
    """Metrics of every case, their means and the lesion-load correlation."""

    model_config = ConfigDict(frozen=True)

    cases: list[CaseMetrics] = Field(description="Per-case metrics, in input order.")
    mean: dict[str, float] = Field(
        description="Mean of each numeric metric over the cases where it is defined (NaN "
        "skipped); NaN when it is defined for none."
    )
    volume_correlation: float | None = Field(
        description="Pearson r between truth and predicted volumes across cases; None with "
        "fewer than 2 cases or when either volume is the same in every case."
    )
