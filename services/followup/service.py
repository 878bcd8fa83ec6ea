"""One comparison end to end: two analysed studies' result folders in, follow-up outputs out.

This is the one entry point the worker, the CLI (``mslesion compare``) and the evaluation
call. It never re-segments: it reuses each study's single-study analysis (the artefacts the
pipeline keeps in ``<result>/analysis/``), registers the prior FLAIR onto the current one,
matches lesions and writes the follow-up SEG, SR, secondary capture, JSON and montage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from pydicom import Dataset

from mslesion.services.config import Settings
from mslesion.services.errors import InputError
from mslesion.services.followup.analysis import FollowUpAnalysis
from mslesion.services.followup.artefacts import AnalysedStudy, read_analysis
from mslesion.services.followup.change_detector import ChangeDetector, load_change_detector
from mslesion.services.followup.matching import VisitLesion, VisitMaps, match_visits
from mslesion.services.followup.model import (
    ACTIVE_CATEGORIES,
    ChangeCategory,
    ChangeThresholds,
    FollowUpReport,
    LesionChange,
    Location,
    RegistrationSummary,
)
from mslesion.services.followup.outputs import write_followup_outputs
from mslesion.services.followup.register import align_prior, resample_to_current
from mslesion.services.imaging import registration
from mslesion.services.reporting.history_chart import ChartPoint
from mslesion.services.reporting.identity import new_uid

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LesionIdentity:
    """A lesion's persistent identity: the tracking UID and short name every visit reuses."""

    tracking_uid: str
    tracking_id: str  # e.g. "L7"


@dataclass(frozen=True)
class PriorIdentities:
    """Identities of the prior study's lesions by rank, and the next free ``L<n>`` number."""

    by_rank: dict[int, LesionIdentity]
    next_number: int


@dataclass
class ComparisonResult:
    """What :func:`compare_results` produced and where it was written."""

    analysis: FollowUpAnalysis
    files: dict[str, Path]


def compare_results(
    prior_dir: Path,
    current_dir: Path,
    out_dir: Path,
    settings: Settings,
    *,
    current_sources: list[Dataset],
    prior_sources: Sequence[Dataset] = (),
    identities: PriorIdentities | None = None,
    history: Sequence[ChartPoint] = (),
    notes: Sequence[str] = (),
) -> ComparisonResult:
    """Compare two analysed studies of one patient and write the follow-up outputs.

    ``prior_dir`` and ``current_dir`` are single-study result folders (``mslesion segment``
    output or a job's results). ``current_sources`` are the current FLAIR's DICOM datasets
    (the SEG references them); ``prior_sources`` the prior FLAIR's, referenced as other
    evidence by the SR when given. ``identities`` are the prior lesions' persistent identities
    (from the database); without them the prior report's tracking UIDs and ``L<rank>`` are used.
    ``history`` is the patient's lesion-load timeline for the secondary capture; ``notes``
    are caveats the caller adds to the report (e.g. that a visit was re-analysed).
    The settings' change detector (``followup_change_detector``) reads both FLAIRs too.

    Raises:
        RegistrationError: the prior cannot be aligned to the current study (the
            single-study results stand; nothing is written).
        InputError: a result folder lacks the analysis artefacts or does not match.
    """
    analysis = analyse_pair(
        read_analysis(prior_dir),
        read_analysis(current_dir),
        settings.followup_thresholds,
        identities,
        settings,
        notes,
        load_change_detector(settings),
    )
    t0 = time.perf_counter()
    files = write_followup_outputs(
        out_dir,
        analysis,
        current_sources,
        settings,
        prior_sources=prior_sources,
        history=history,
    )
    log.info("follow-up outputs written in %.1f s", time.perf_counter() - t0)
    return ComparisonResult(analysis, files)


def analyse_pair(
    prior: AnalysedStudy,
    current: AnalysedStudy,
    thresholds: ChangeThresholds,
    identities: PriorIdentities | None,
    settings: Settings,
    notes: Sequence[str] = (),
    detector: ChangeDetector | None = None,
) -> FollowUpAnalysis:
    """Register, resample, read change and match two analysed studies (no files written).

    ``detector``: the change detector that reads both FLAIRs; None reads change from the
    two segmentations' volumes only.
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    alignment = align_prior(current.flair, current.brain, prior.flair, prior.brain)
    timings["register"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    to_current = alignment.transform

    def pull(array: np.ndarray, nearest: bool = False) -> np.ndarray:
        method = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
        return resample_to_current(array, prior.flair, current.flair, to_current, method)

    prior_labels = pull(prior.labels, nearest=True).astype(np.int32)
    prior_probability = pull(prior.probability)
    prior_flair = pull(sitk.GetArrayFromImage(prior.flair))
    prior_brain = pull(prior.brain.astype(np.uint8), nearest=True).astype(bool)
    current_flair = sitk.GetArrayFromImage(current.flair)
    both = current.brain & prior_brain
    rise = _standardise(current_flair, both) - _standardise(prior_flair, both)
    sx, sy, sz = (float(v) for v in current.flair.GetSpacing())
    maps = VisitMaps(current.labels, prior_labels, prior_probability, rise, (sz, sy, sx))
    timings["resample"] = round(time.perf_counter() - t0, 3)
    if detector is not None:
        t0 = time.perf_counter()
        read = detector.read(
            current.flair, current.brain, prior.flair, prior.brain, to_current,
            region=current.labels > 0,  # only the current lesions are judged
        )  # fmt: skip
        maps.change_probability = read.probability
        timings["change_detector"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    prior_lesions, next_number = _prior_lesions(prior, identities, to_current)
    matching = match_visits(
        maps, _current_lesions(current, settings), prior_lesions, thresholds, next_number
    )
    timings["match"] = round(time.perf_counter() - t0, 3)
    report = _report(prior, current, alignment.summary, thresholds, matching.lesions, timings)
    report.notes.extend(notes)
    report.change_detector = detector.name if detector is not None else ""
    flair_on_current = sitk.GetImageFromArray(prior_flair.astype(np.float32))
    flair_on_current.CopyInformation(current.flair)
    return FollowUpAnalysis(
        report=report,
        current_flair=current.flair,
        prior_flair=flair_on_current,
        category_map=matching.category_map,
        prior_mask=(prior_labels > 0).astype(np.uint8),
        label_map=current.labels,
    )


def _standardise(flair: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """FLAIR in brain-standardised units: (value - brain median) / robust brain spread."""
    values = flair[brain]
    if values.size == 0:
        return np.zeros_like(flair, dtype=np.float32)
    q25, median, q75 = np.percentile(values, [25, 50, 75])
    spread = max(float(q75 - q25) / 1.349, 1e-6)
    return ((flair - median) / spread).astype(np.float32)


def _location(value: str | None) -> Location:
    try:
        return Location(value) if value else Location.DEEP_WHITE_MATTER
    except ValueError:
        return Location.DEEP_WHITE_MATTER


def _current_lesions(current: AnalysedStudy, settings: Settings) -> dict[int, VisitLesion]:
    return {
        e.rank: VisitLesion(
            rank=e.rank,
            volume_ml=e.volume_ml,
            centroid_mm_lps=e.centroid_mm_lps,
            location=_location(e.location),
            tracking_uid=e.tracking_uid or str(new_uid(settings)),
            tracking_id="",
        )
        for e in current.report.lesions
    }


def _prior_lesions(
    prior: AnalysedStudy, identities: PriorIdentities | None, to_current: sitk.Transform
) -> tuple[dict[int, VisitLesion], int]:
    """Prior lesions with their identities and centroids moved into the current space."""
    to_prior_inverse = registration.inverse(to_current)  # prior points -> current points
    out = {}
    for e in prior.report.lesions:
        known = identities.by_rank.get(e.rank) if identities else None
        uid = known.tracking_uid if known else e.tracking_uid
        if not uid:
            raise InputError(f"prior lesion {e.rank} has no tracking UID: analyse the prior again")
        centre = to_prior_inverse.TransformPoint(tuple(float(v) for v in e.centroid_mm_lps))
        out[e.rank] = VisitLesion(
            rank=e.rank,
            volume_ml=e.volume_ml,
            centroid_mm_lps=(float(centre[0]), float(centre[1]), float(centre[2])),
            location=_location(e.location),
            tracking_uid=uid,
            tracking_id=known.tracking_id if known else f"L{e.rank}",
        )
    next_number = identities.next_number if identities else prior.report.lesion_count + 1
    return out, next_number


def _report(
    prior: AnalysedStudy,
    current: AnalysedStudy,
    registration_summary: RegistrationSummary,
    thresholds: ChangeThresholds,
    lesions: list[LesionChange],
    timings: dict[str, float],
) -> FollowUpReport:
    counts = {c: sum(1 for les in lesions if les.category == c) for c in ChangeCategory}
    by_location = {
        loc: sum(1 for les in lesions if les.category in ACTIVE_CATEGORIES and les.location == loc)
        for loc in Location
    }
    return FollowUpReport(
        created=datetime.now(UTC),
        prior_study_instance_uid=prior.report.study_instance_uid,
        prior_study_date=prior.report.study_date,
        current_study_instance_uid=current.report.study_instance_uid,
        current_study_date=current.report.study_date,
        model_name=current.report.model_name,
        model_version=current.report.model_version,
        prior_model=f"{prior.report.model_name} {prior.report.model_version}",
        notes=_notes(prior, current),
        registration=registration_summary,
        thresholds=thresholds,
        counts=counts,
        new_or_enlarging_by_location=by_location,
        activity=any(c in ACTIVE_CATEGORIES and n > 0 for c, n in counts.items()),
        total_volume_ml=current.report.total_lesion_volume_ml,
        prior_total_volume_ml=prior.report.total_lesion_volume_ml,
        lesions=lesions,
        timings_s=timings,
    )


def _notes(prior: AnalysedStudy, current: AnalysedStudy) -> list[str]:
    """Caveats of this pair: visits analysed by different models (e.g. a prior without T1)."""
    before = (prior.report.model_name, prior.report.model_version)
    now = (current.report.model_name, current.report.model_version)
    if before == now:
        return []
    return [
        f"the visits were analysed by different models ({' '.join(before)} before, "
        f"{' '.join(now)} now, e.g. one visit lacks a series): part of any change may be the "
        "models' difference"
    ]
