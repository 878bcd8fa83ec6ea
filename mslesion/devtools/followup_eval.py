"""Score the follow-up reading against the reference change masks of open-ms/longitudinal.

Each patient folder holds two raw clinical visits and, in a common space, the consensus mask
of lesion *change* (new or enlarging lesion voxels) with each visit's FLAIR→common affine
(ITK convention: common points → FLAIR points). A detected new or enlarging lesion of the
current visit is pulled into the common space and scored lesion-wise:

* sensitivity: reference change lesions (26-connected components) touched by a detection;
* false new/enlarging: detected active lesions that touch no reference change voxel.

Both visits go through the whole product path: NIfTI → DICOM study → ``segment_study`` →
:func:`~mslesion.services.followup.service.analyse_pair`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from pydantic import BaseModel

from mslesion.devtools.dicom_writer import StudyInfo, write_study
from mslesion.services.config import Settings
from mslesion.services.followup.analysis import CATEGORY_VALUE, FollowUpAnalysis
from mslesion.services.followup.artefacts import read_analysis
from mslesion.services.followup.model import ChangeCategory, ChangeThresholds
from mslesion.services.followup.service import analyse_pair
from mslesion.services.pipeline import segment_study
from mslesion.services.segmentation.catalogue import ModelSet
from mslesion.services.segmentation.lesions import label_lesions

ACTIVE_VALUES = (CATEGORY_VALUE[ChangeCategory.NEW], CATEGORY_VALUE[ChangeCategory.ENLARGING])


class PairScore(BaseModel):
    """Lesion-wise scores of one prior/current pair against the reference change mask."""

    patient: str
    reference_lesions: int
    reference_lesions_min_size: int
    detected_active: int
    true_detections: int
    false_detections: int
    sensitivity: float
    sensitivity_min_size: float
    precision: float
    counts: dict[str, int]
    registration_dice: float | None
    seconds: float


@dataclass(frozen=True)
class Visit:
    """One visit's raw NIfTI files and its FLAIR → common-space affine."""

    flair: Path
    t1: Path | None
    t2: Path | None
    to_common: Path


def visits(patient_dir: Path) -> tuple[Visit, Visit]:
    """The two visits of one longitudinal patient folder."""

    def one(n: int) -> Visit:
        def opt(name: str) -> Path | None:
            path = patient_dir / f"study{n}_{name}.nii.gz"
            return path if path.is_file() else None

        return Visit(
            patient_dir / f"study{n}_FLAIR.nii.gz",
            opt("T1W"),
            opt("T2W"),
            patient_dir / f"study{n}_FLAIR_to_common_space.txt",
        )

    return one(1), one(2)


def analyse_visit(visit: Visit, patient: str, date: str, work: Path, settings: Settings) -> Path:
    """Wrap one visit as a DICOM study and run the pipeline; the result folder (reused)."""
    result = work / f"{patient}-{date}.out"
    if (result / "analysis").is_dir():
        return result
    niftis = {"FLAIR": visit.flair, **({"T1W": visit.t1} if visit.t1 else {})}
    if visit.t2:
        niftis["T2W"] = visit.t2
    study = work / f"{patient}-{date}.dcm"
    write_study(niftis, study, StudyInfo(patient_id=patient, study_date=date))
    segment_study(study, result, ModelSet.from_settings(settings), settings)
    return result


def score_pair(
    analysis: FollowUpAnalysis,
    reference: sitk.Image,
    current_to_common: sitk.Transform,
    patient: str,
    seconds: float,
    min_reference_voxels: int,
) -> PairScore:
    """Lesion-wise scores of the active (new/enlarging) detections in the common space."""
    active_labels = np.where(np.isin(analysis.category_map, ACTIVE_VALUES), analysis.label_map, 0)
    image = sitk.GetImageFromArray(active_labels.astype(np.int32))
    image.CopyInformation(analysis.current_flair)
    detected = sitk.GetArrayFromImage(
        sitk.Resample(image, reference, current_to_common, sitk.sitkNearestNeighbor, 0)
    )
    ref_labels, n_ref = label_lesions(sitk.GetArrayFromImage(reference) > 0)
    sizes = np.bincount(ref_labels.ravel(), minlength=n_ref + 1)
    hit = set(np.unique(ref_labels[(detected > 0) & (ref_labels > 0)]).tolist())
    big = {i for i in range(1, n_ref + 1) if sizes[i] >= min_reference_voxels}
    det_ids = set(np.unique(active_labels[active_labels > 0]).tolist())
    true_ids = set(np.unique(detected[(detected > 0) & (ref_labels > 0)]).tolist())
    counts = {c.value: n for c, n in analysis.report.counts.items()}
    return PairScore(
        patient=patient,
        reference_lesions=n_ref,
        reference_lesions_min_size=len(big),
        detected_active=len(det_ids),
        true_detections=len(true_ids),
        false_detections=len(det_ids - true_ids),
        sensitivity=len(hit) / n_ref if n_ref else 1.0,
        sensitivity_min_size=len(hit & big) / len(big) if big else 1.0,
        precision=len(true_ids) / len(det_ids) if det_ids else 1.0,
        counts=counts,
        registration_dice=analysis.report.registration.brain_overlap_dice,
        seconds=round(seconds, 2),
    )


def evaluate_patient(
    patient_dir: Path,
    work: Path,
    settings: Settings,
    thresholds: ChangeThresholds,
    min_reference_voxels: int,
    *,
    reverse: bool = False,
) -> tuple[PairScore, FollowUpAnalysis]:
    """Segment both visits (or reuse), compare them, score against the reference.

    ``reverse`` compares visit 1 against visit 2 as if it were the later one: the reference
    marks change, and on patient12 its voxels are brighter at visit 1.
    """
    import time

    first, second = visits(patient_dir)
    prior_dir = analyse_visit(first, patient_dir.name, "20100101", work, settings)
    current_dir = analyse_visit(second, patient_dir.name, "20110101", work, settings)
    if reverse:
        first, second, prior_dir, current_dir = second, first, current_dir, prior_dir
    t0 = time.perf_counter()
    analysis = analyse_pair(
        read_analysis(prior_dir), read_analysis(current_dir), thresholds, None, settings
    )
    seconds = time.perf_counter() - t0
    reference = sitk.ReadImage(str(patient_dir / "lesion_change_mask_common_space.nii.gz"))
    to_common = sitk.ReadTransform(str(second.to_common))
    score = score_pair(
        analysis, reference, to_common, patient_dir.name, seconds, min_reference_voxels
    )
    return score, analysis
