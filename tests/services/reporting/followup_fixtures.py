"""A small synthetic follow-up case shared by the follow-up output tests.

Two studies of one patient (current and prior) written as DICOM with the product's writer,
a category map with box-shaped lesions of every category (exact voxel counts), the prior's
FLAIR and lesion mask on the current grid, and a :class:`FollowUpReport` whose lesions match
the boxes, with one disappeared lesion. Axis-aligned axial geometry keeps the arrays simple:
frame ``k`` of every array is source instance ``k``.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.uid import generate_uid

from mslesion.devtools.dicom_writer import StudyInfo, nifti_to_series
from mslesion.services.config import Settings
from mslesion.services.followup.analysis import CATEGORY_VALUE, FollowUpAnalysis
from mslesion.services.followup.model import (
    ChangeCategory,
    ChangeThresholds,
    FollowUpReport,
    LesionChange,
    Location,
    RegistrationStatus,
    RegistrationSummary,
)
from mslesion.services.imaging.geometry import image_on
from mslesion.services.reporting.history_chart import ChartPoint
from mslesion.services.reporting.seg import patient_affine
from tests.dicom_patient import PATIENT_ID, PATIENT_NAME

MODEL_NAME = "flair_t1"
MODEL_VERSION = "0.3.1"
FRAMES, ROWS, COLUMNS = 12, 40, 48
SPACING_MM = (0.9, 0.9, 3.0)  # column, row, slice
VOXEL_ML = SPACING_MM[0] * SPACING_MM[1] * SPACING_MM[2] / 1000.0
CURRENT_DATE, PRIOR_DATE = "20250301", "20240301"
TRACKING_ROOT = "1.2.826.0.1.3680043.8.498.99."

Box = tuple[slice, slice, slice]


@dataclass(frozen=True)
class Blob:
    """One tracked lesion: its boxes now and at the prior (None: absent then)."""

    tracking_id: str
    category: ChangeCategory
    location: Location
    now: Box | None
    prior: Box | None


BLOBS = (
    Blob("L1", ChangeCategory.NEW, Location.PERIVENTRICULAR,
         (slice(4, 6), slice(10, 14), slice(10, 14)), None),
    Blob("L2", ChangeCategory.NEW, Location.JUXTACORTICAL,
         (slice(8, 9), slice(25, 28), slice(30, 33)), None),
    Blob("L3", ChangeCategory.ENLARGING, Location.PERIVENTRICULAR,
         (slice(5, 8), slice(20, 25), slice(15, 20)), (slice(6, 7), slice(21, 24), slice(16, 19))),
    Blob("L4", ChangeCategory.STABLE, Location.DEEP_WHITE_MATTER,
         (slice(3, 5), slice(28, 32), slice(8, 12)), (slice(3, 5), slice(28, 32), slice(8, 12))),
    Blob("L5", ChangeCategory.SHRINKING, Location.INFRATENTORIAL,
         (slice(1, 2), slice(12, 15), slice(32, 36)), (slice(1, 3), slice(12, 16), slice(32, 36))),
    Blob("L7", ChangeCategory.DISAPPEARED, Location.JUXTACORTICAL,
         None, (slice(9, 10), slice(14, 17), slice(24, 27))),
)  # fmt: skip
"""L6 is missing on purpose: identities are persistent, not renumbered per visit."""


@dataclass
class FollowUpCase:
    """Everything the follow-up writers take, plus where the DICOM files are."""

    current_sources: list[pydicom.Dataset]
    prior_sources: list[pydicom.Dataset]
    analysis: FollowUpAnalysis
    history: list[ChartPoint]
    settings: Settings


def settings() -> Settings:
    return Settings(
        uid_root="1.2.826.0.1.3680043.8.498.77.",
        manufacturer="mslesion test",
        manufacturer_model_name="mslesion-ci",
        device_serial_number="CI-0042",
        institution_name="Test Hospital",
    )


def voxels(box: Box | None) -> int:
    if box is None:
        return 0
    return int(np.prod([s.stop - s.start for s in box]))


def head(seed: int) -> np.ndarray:
    """A FLAIR-like ellipsoid head (frames, rows, columns), brighter lesions added later."""
    grid = np.ogrid[:FRAMES, :ROWS, :COLUMNS]
    centre, radii = (5.5, 19.5, 23.5), (7.0, 18.0, 22.0)
    inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) <= 1
    noise = np.random.default_rng(seed).normal(0, 20, inside.shape)
    return np.where(inside, 600.0 + noise, 0.0).clip(0, None)


def maps() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Category map, label map (current rank) and the prior's mask, all on the current grid."""
    category = np.zeros((FRAMES, ROWS, COLUMNS), np.uint8)
    labels = np.zeros(category.shape, np.int32)
    prior = np.zeros_like(category)
    for blob in BLOBS:
        if blob.now is not None:
            category[blob.now] = CATEGORY_VALUE[blob.category]
            labels[blob.now] = current_ranks()[blob.tracking_id]
        if blob.prior is not None:
            prior[blob.prior] = 1
    return category, labels, prior


def current_ranks() -> dict[str, int]:
    """Rank of each current lesion, largest first (the single-study report's labels)."""
    current = sorted((b for b in BLOBS if b.now is not None), key=lambda b: -voxels(b.now))
    return {b.tracking_id: rank for rank, b in enumerate(current, start=1)}


def write_flair(out_dir: Path, volume: np.ndarray, study: StudyInfo) -> list[pydicom.Dataset]:
    """Write ``volume`` (frames, rows, columns) as an axial DICOM series; read it back."""
    affine = np.diag([-SPACING_MM[0], -SPACING_MM[1], SPACING_MM[2], 1.0])  # RAS: LPS diagonal
    affine[:3, 3] = (10.0, 20.0, -15.0)
    data = np.round(volume).astype(np.uint16).transpose(2, 1, 0)  # NIfTI (i, j, k)
    with tempfile.TemporaryDirectory() as scratch:
        nifti = Path(scratch) / "flair.nii.gz"
        image = nib.Nifti1Image(data, affine)
        image.set_qform(affine, code=1)
        image.set_sform(affine, code=1)
        nib.save(image, str(nifti))
        files = nifti_to_series(
            nifti,
            out_dir,
            study=study,
            series_description="AX FLAIR",
            series_number=4,
            protocol_params={
                "ScanningSequence": ["SE", "IR"],
                "SequenceVariant": ["SK", "SP", "MP"],
                "RepetitionTime": 9000.0,
                "EchoTime": 120.0,
                "InversionTime": 2500.0,
                "MRAcquisitionType": "2D",
            },
        )
    return [pydicom.dcmread(f) for f in files]  # slice order k: +z, the normal


def lesion_changes(rank_of: dict[str, int]) -> list[LesionChange]:
    changes = []
    for number, blob in enumerate(BLOBS):
        volume, prior = voxels(blob.now) * VOXEL_ML, voxels(blob.prior) * VOXEL_ML
        box = blob.now or blob.prior
        assert box is not None
        centre = tuple(float((s.start + s.stop - 1) / 2) for s in box)
        changes.append(
            LesionChange(
                tracking_uid=f"{TRACKING_ROOT}{number + 1}",
                tracking_id=blob.tracking_id,
                category=blob.category,
                current_label=rank_of.get(blob.tracking_id),
                prior_labels=[number + 1] if blob.prior is not None else [],
                volume_ml=volume,
                prior_volume_ml=prior,
                centroid_mm_lps=centre,  # index units are enough for the writers
                location=blob.location,
            )
        )
    return changes


def report(current_uid: str, prior_uid: str) -> FollowUpReport:
    lesions = lesion_changes(current_ranks())
    counts = {c: sum(1 for les in lesions if les.category == c) for c in ChangeCategory}
    active = (ChangeCategory.NEW, ChangeCategory.ENLARGING)
    by_location = {
        loc: sum(1 for les in lesions if les.location == loc and les.category in active)
        for loc in Location
    }
    return FollowUpReport(
        created=dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC),
        prior_study_instance_uid=prior_uid,
        prior_study_date=PRIOR_DATE,
        current_study_instance_uid=current_uid,
        current_study_date=CURRENT_DATE,
        model_name=MODEL_NAME,
        model_version=MODEL_VERSION,
        registration=RegistrationSummary(
            status=RegistrationStatus.REGISTERED, reason="same scanner, rigid is enough"
        ),
        thresholds=ChangeThresholds(),
        counts=counts,
        new_or_enlarging_by_location=by_location,
        activity=True,
        total_volume_ml=sum(les.volume_ml for les in lesions),
        prior_total_volume_ml=sum(les.prior_volume_ml for les in lesions),
        lesions=lesions,
    )


def make_case(folder: Path) -> FollowUpCase:
    """Write both studies under ``folder`` and assemble the analysis."""
    category, labels, prior_mask = maps()
    current_volume = np.where(category > 0, 1000.0, head(1))
    prior_volume = np.where(prior_mask > 0, 1000.0, head(2))
    current_study = StudyInfo(
        patient_name=PATIENT_NAME,
        patient_id=PATIENT_ID,
        study_uid=str(generate_uid()),
        study_date=CURRENT_DATE,
        study_time="101500",
        accession_number="ACC2",
    )
    prior_study = StudyInfo(
        patient_name=PATIENT_NAME,
        patient_id=PATIENT_ID,
        study_uid=str(generate_uid()),
        study_date=PRIOR_DATE,
        study_time="091000",
        accession_number="ACC1",
    )
    current_sources = write_flair(folder / "current", current_volume, current_study)
    prior_sources = write_flair(folder / "prior", prior_volume, prior_study)
    affine = patient_affine(current_sources)
    analysis = FollowUpAnalysis(
        report=report(current_study.study_uid, prior_study.study_uid),
        current_flair=image_on(current_volume.astype(np.float32), affine),
        prior_flair=image_on(prior_volume.astype(np.float32), affine),  # already registered
        category_map=category,
        prior_mask=prior_mask,
        label_map=labels,
    )
    history = [
        ChartPoint(dt.date(2023, 3, 1), 0.2),
        ChartPoint(dt.date(2024, 3, 1), analysis.report.prior_total_volume_ml, active=False),
        ChartPoint(dt.date(2025, 3, 1), analysis.report.total_volume_ml, active=True),
    ]
    return FollowUpCase(current_sources, prior_sources, analysis, history, settings())
