"""Score the follow-up reading against the reference change masks of open-ms/longitudinal.

Each patient folder holds two raw clinical visits and, in a common space, the consensus mask
of lesion *change* (new or enlarging lesion voxels) with each visit's FLAIR→common affine
(ITK convention: common points → FLAIR points). A detected new or enlarging lesion of the
current visit is pulled into the common space and scored lesion-wise:

* sensitivity: reference change lesions (26-connected components) touched by a detection;
* false new/enlarging: detected active lesions that touch no reference change voxel.

Both visits go through the whole product path: NIfTI → DICOM study → ``segment_study`` →
:func:`~mslesion.services.followup.service.analyse_pair`.

The reference masks mark change in **both** directions: on these two patients 5 of 13 and 18
of 46 reference components are darker at the later visit (their mean FLAIR, each visit
bias-corrected and scaled by its brain median in the common space, falls by 0.02–0.28 where
the voxel noise has a MAD of about 0.04), among them patient12's two largest.
:func:`reference_lesions` therefore splits the reference by the sign of that difference, and
the scores are given three ways: new/enlarging detections against every reference component
(as the masks were first read), against the increasing ones, and shrinking/disappeared
detections against the decreasing ones.
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
from mslesion.services.followup.change_detector import ChangeDetector
from mslesion.services.followup.model import ChangeCategory, ChangeThresholds
from mslesion.services.followup.service import analyse_pair
from mslesion.services.imaging.bias import n4_correct
from mslesion.services.pipeline import segment_study
from mslesion.services.segmentation.catalogue import ModelSet
from mslesion.services.segmentation.lesions import label_lesions

ACTIVE_VALUES = (CATEGORY_VALUE[ChangeCategory.NEW], CATEGORY_VALUE[ChangeCategory.ENLARGING])


class ReferenceLesion(BaseModel):
    """One reference change lesion (26-connected component) and what each visit shows there.

    FLAIR values are the mean over the lesion, each visit N4-corrected and divided by its brain
    median in the common space; probabilities are each visit's own lesion probability map,
    pulled there.
    """

    volume_ml: float
    direction: int  # +1: brighter at the later visit; -1: darker
    flair_prior: float
    flair_current: float
    probability_prior_max: float
    probability_current_max: float


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
    reference_increasing: int = 0
    sensitivity_increasing: float = 1.0
    false_detections_increasing: int = 0
    reference_decreasing: int = 0
    detected_decreasing: int = 0
    sensitivity_decreasing: float = 1.0
    reference: list[ReferenceLesion] = []


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


def _to_common(
    labels: np.ndarray, grid: sitk.Image, reference: sitk.Image, to_common: sitk.Transform
) -> np.ndarray:
    """A label array of a visit's native grid, pulled onto the common space (nearest)."""
    image = sitk.GetImageFromArray(labels.astype(np.int32))
    image.CopyInformation(grid)
    return sitk.GetArrayFromImage(
        sitk.Resample(image, reference, to_common, sitk.sitkNearestNeighbor, 0)
    )


def _linear(image: sitk.Image, reference: sitk.Image, to_common: sitk.Transform) -> sitk.Image:
    """``image`` pulled onto the common space (linear), as float32."""
    return sitk.Resample(image, reference, to_common, sitk.sitkLinear, 0.0, sitk.sitkFloat32)


def common_space_flairs(
    visits_: tuple[Visit, Visit],
    reference: sitk.Image,
    brain: sitk.Image,
    *,
    bias_correct: bool = True,
) -> list[np.ndarray]:
    """Each visit's raw FLAIR in the common space, bias-corrected, over its brain median.

    Pulled through the visit's own affine (linear), N4-corrected inside the reference brain
    mask as the pipeline corrects (``bias_correct``), divided by the median inside it: neither
    a global contrast change nor a session's smooth bias field then counts as change.
    """
    inside = sitk.GetArrayFromImage(brain) > 0
    out = []
    for visit in visits_:
        to_common = sitk.ReadTransform(str(visit.to_common))
        image = _linear(sitk.ReadImage(str(visit.flair)), reference, to_common)
        if bias_correct:
            image = n4_correct(image, sitk.Cast(brain > 0, sitk.sitkUInt8))
        array = sitk.GetArrayFromImage(image)
        out.append(array / float(np.median(array[inside & (array > 0)])))
    return out


def common_space_maps(
    visits_: tuple[Visit, Visit], maps: tuple[sitk.Image, sitk.Image], reference: sitk.Image
) -> list[np.ndarray]:
    """Each visit's map of its own FLAIR grid (e.g. lesion probability) in the common space."""
    return [
        sitk.GetArrayFromImage(_linear(image, reference, sitk.ReadTransform(str(visit.to_common))))
        for visit, image in zip(visits_, maps, strict=True)
    ]


def reference_lesions(
    visits_: tuple[Visit, Visit],
    probabilities: tuple[sitk.Image, sitk.Image],
    reference: sitk.Image,
    brain: sitk.Image,
    *,
    bias_correct: bool = True,
) -> list[ReferenceLesion]:
    """Each reference component with its direction of change and both visits' readings.

    ``visits_`` and ``probabilities`` (each visit's lesion probability on its own FLAIR grid)
    are (prior, current). The direction is the sign of the mean FLAIR difference of
    the two visits' :func:`common_space_flairs` (``bias_correct`` as there).
    """
    flair = common_space_flairs(visits_, reference, brain, bias_correct=bias_correct)
    probability = common_space_maps(visits_, probabilities, reference)
    labels, n = label_lesions(sitk.GetArrayFromImage(reference) > 0)
    voxel_ml = float(np.prod(reference.GetSpacing())) / 1000.0
    found = []
    for i in range(1, n + 1):
        where = labels == i
        before, after = float(flair[0][where].mean()), float(flair[1][where].mean())
        found.append(ReferenceLesion(
            volume_ml=round(int(where.sum()) * voxel_ml, 4),
            direction=1 if after > before else -1,
            flair_prior=round(before, 3),
            flair_current=round(after, 3),
            probability_prior_max=round(float(probability[0][where].max()), 3),
            probability_current_max=round(float(probability[1][where].max()), 3),
        ))  # fmt: skip
    return found


def _decreasing_detections(
    analysis: FollowUpAnalysis, prior_labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(current-grid labels of shrinking lesions, prior-grid labels of disappeared ones)."""
    shrinking = np.where(
        analysis.category_map == CATEGORY_VALUE[ChangeCategory.SHRINKING], analysis.label_map, 0
    )
    gone = [
        rank
        for change in analysis.report.lesions
        if change.category is ChangeCategory.DISAPPEARED
        for rank in change.prior_labels
    ]
    return shrinking, np.where(np.isin(prior_labels, gone), prior_labels, 0)


def score_pair(
    analysis: FollowUpAnalysis,
    reference: sitk.Image,
    current_to_common: sitk.Transform,
    patient: str,
    seconds: float,
    min_reference_voxels: int,
    lesions: list[ReferenceLesion] | None = None,
    decreasing: np.ndarray | None = None,
) -> PairScore:
    """Lesion-wise scores of the active (new/enlarging) detections in the common space.

    ``lesions`` (from :func:`reference_lesions`, in label order) splits the reference by the
    direction of its change; ``decreasing`` is a common-space mask of the shrinking and disappeared
    detections, scored against the decreasing reference components.
    """
    active_labels = np.where(np.isin(analysis.category_map, ACTIVE_VALUES), analysis.label_map, 0)
    detected = _to_common(active_labels, analysis.current_flair, reference, current_to_common)
    ref_labels, n_ref = label_lesions(sitk.GetArrayFromImage(reference) > 0)
    sizes = np.bincount(ref_labels.ravel(), minlength=n_ref + 1)
    hit = set(np.unique(ref_labels[(detected > 0) & (ref_labels > 0)]).tolist())
    big = {i for i in range(1, n_ref + 1) if sizes[i] >= min_reference_voxels}
    det_ids = set(np.unique(active_labels[active_labels > 0]).tolist())
    true_ids = set(np.unique(detected[(detected > 0) & (ref_labels > 0)]).tolist())
    counts = {c.value: n for c, n in analysis.report.counts.items()}
    split = _direction_scores(ref_labels, detected, hit, det_ids, lesions, decreasing)
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
        reference=lesions or [],
        **split,
    )


def _direction_scores(
    ref_labels: np.ndarray,
    detected: np.ndarray,
    hit: set[int],
    det_ids: set[int],
    lesions: list[ReferenceLesion] | None,
    decreasing: np.ndarray | None,
) -> dict[str, float | int]:
    """The PairScore fields that split the reference by the direction of its change.

    ``hit``: reference labels touched by a new/enlarging detection; ``det_ids``: those
    detections' labels; ``lesions`` in reference label order (label i is ``lesions[i - 1]``).
    """
    if lesions is None or decreasing is None:
        return {}
    rising = {i for i, r in enumerate(lesions, start=1) if r.direction > 0}
    falling = {i for i, r in enumerate(lesions, start=1) if r.direction < 0}
    hit_falling = set(np.unique(ref_labels[decreasing & (ref_labels > 0)]).tolist())
    on_rising = np.isin(ref_labels, sorted(rising))
    true_rising = set(np.unique(detected[(detected > 0) & on_rising]).tolist())
    _, found_falling = label_lesions(decreasing)
    return {
        "reference_increasing": len(rising),
        "sensitivity_increasing": len(hit & rising) / len(rising) if rising else 1.0,
        "false_detections_increasing": len(det_ids - true_rising),
        "reference_decreasing": len(falling),
        "detected_decreasing": found_falling,
        "sensitivity_decreasing": len(hit_falling & falling) / len(falling) if falling else 1.0,
    }


def evaluate_patient(
    patient_dir: Path,
    work: Path,
    settings: Settings,
    thresholds: ChangeThresholds,
    min_reference_voxels: int,
    *,
    reverse: bool = False,
    detector: ChangeDetector | None = None,
) -> tuple[PairScore, FollowUpAnalysis]:
    """Segment both visits (or reuse), compare them, score against the reference.

    ``reverse`` compares visit 1 against visit 2 as if it were the later one: the reference
    marks change, and on patient12 its voxels are brighter at visit 1. ``detector``: the
    change detector to read both FLAIRs with (None: the volume rules only).
    """
    import time

    first, second = visits(patient_dir)
    prior_dir = analyse_visit(first, patient_dir.name, "20100101", work, settings)
    current_dir = analyse_visit(second, patient_dir.name, "20110101", work, settings)
    if reverse:
        first, second, prior_dir, current_dir = second, first, current_dir, prior_dir
    t0 = time.perf_counter()
    analysis = analyse_pair(
        read_analysis(prior_dir), read_analysis(current_dir), thresholds, None, settings,
        detector=detector,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    reference = sitk.ReadImage(str(patient_dir / "lesion_change_mask_common_space.nii.gz"))
    brain = sitk.ReadImage(str(patient_dir / "brainmask_common_space.nii.gz"))
    prior, current = read_analysis(prior_dir), read_analysis(current_dir)
    chances = (prior.image_like(prior.probability), current.image_like(current.probability))
    lesions = reference_lesions((first, second), chances, reference, brain)
    to_common = sitk.ReadTransform(str(second.to_common))
    shrinking, gone = _decreasing_detections(analysis, prior.labels)
    prior_to_common = sitk.ReadTransform(str(first.to_common))
    decreasing = (_to_common(shrinking, analysis.current_flair, reference, to_common) > 0) | (
        _to_common(gone, prior.flair, reference, prior_to_common) > 0
    )
    score = score_pair(
        analysis, reference, to_common, patient_dir.name, seconds, min_reference_voxels,
        lesions, decreasing,
    )  # fmt: skip
    return score, analysis
