"""The machine-readable study report: the numbers of the SR, as JSON for dashboards and audits.

What it holds, and what it leaves out on purpose:

* StudyInstanceUID and study date: enough to link the report to the study in PACS/RIS;
* the series used (role -> SeriesInstanceUID, description, number) and the SEG/SR UIDs;
* no patient name, ID or birth date: the file is copied to logs, dashboards and research
  exports where identifying data does not belong, and the study UID links it back to the
  patient inside the hospital when needed.

Lesions are listed largest first; entry ``rank`` N is "lesion N" in the SR. Unlike the SR,
the list is not capped. Centroids are DICOM patient coordinates (LPS: x to the patient's
left, y to posterior, z to head), in mm.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydicom import Dataset

from mslesion.services.errors import InputError
from mslesion.services.reporting.identity import RESEARCH_DISCLAIMER
from mslesion.services.reporting.seg import check_lesion_coordinates
from mslesion.services.reporting.sr import rank_lesions
from mslesion.services.segmentation.postprocess import LesionReport

SCHEMA_VERSION: Literal[1] = 1
_FILE_MODE = 0o644


class SeriesUsed(BaseModel):
    """One input series, as PACS identifies it."""

    model_config = ConfigDict(extra="forbid")

    series_instance_uid: str
    series_description: str | None = None
    series_number: int | None = None


class LesionEntry(BaseModel):
    """One lesion; ``rank`` 1 is the largest and matches "lesion 1" in the SR."""

    model_config = ConfigDict(extra="forbid")

    rank: int = Field(ge=1)
    volume_ml: float = Field(ge=0)
    voxels: int = Field(ge=0)
    centroid_mm_lps: tuple[float, float, float]
    tracking_uid: str | None = Field(
        default=None, description="the lesion's tracking UID, as in the SR"
    )
    location: str | None = Field(
        default=None, description="McDonald location (periventricular, juxtacortical, ...)"
    )


class StudyReport(BaseModel):
    """Everything a neurologist's dashboard needs from one analysed study (no patient identity)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    disclaimer: str = RESEARCH_DISCLAIMER
    created: datetime
    study_instance_uid: str
    study_date: str | None = Field(default=None, description="DICOM DA (YYYYMMDD) of the study")
    model_name: str
    model_version: str
    series: dict[str, SeriesUsed] = Field(description="role (e.g. flair, t1) -> series")
    lesion_count: int = Field(ge=0)
    total_lesion_volume_ml: float = Field(ge=0)
    brain_volume_ml: float = Field(ge=0)
    lesions: list[LesionEntry]
    timings_s: dict[str, float] = Field(default_factory=dict, description="stage -> seconds")
    seg_sop_instance_uid: str | None = None
    sr_sop_instance_uid: str | None = None


def series_used(image: Dataset) -> SeriesUsed:
    """Identify the series of ``image`` (any instance of it)."""
    number = image.get("SeriesNumber")
    return SeriesUsed(
        series_instance_uid=str(image.SeriesInstanceUID),
        series_description=str(image.get("SeriesDescription", "")) or None,
        series_number=int(number) if number not in (None, "") else None,
    )


def build_study_report(
    source_images: Sequence[Dataset],
    lesion_report: LesionReport,
    brain_volume_ml: float,
    model_name: str,
    model_version: str,
    series: Mapping[str, SeriesUsed],
    timings_s: Mapping[str, float] | None = None,
    seg: Dataset | None = None,
    sr: Dataset | None = None,
    tracking_uids: Sequence[str] = (),
    locations: Mapping[int, str] | None = None,
) -> StudyReport:
    """Assemble the report of one study from the same inputs as the SEG and SR.

    ``lesion_report`` must describe the native-grid mask with DICOM patient coordinates,
    i.e. come from ``describe_lesions(mask, prob, patient_affine(source_images))``.
    ``tracking_uids`` (largest first, as given to the SR) and ``locations`` (rank → McDonald
    location) annotate the lesions when given.

    Raises:
        InputError: when the lesion centroids are not LPS coordinates of these images.
    """
    check_lesion_coordinates(source_images, lesion_report)
    first = source_images[0]
    locations = locations or {}
    uids = list(tracking_uids)
    lesions = [
        LesionEntry(
            rank=rank,
            volume_ml=lesion.volume_ml,
            voxels=lesion.voxels,
            centroid_mm_lps=lesion.centroid_mm,
            tracking_uid=uids[rank - 1] if rank <= len(uids) else None,
            location=locations.get(rank),
        )
        for rank, lesion in enumerate(rank_lesions(lesion_report.lesions), start=1)
    ]
    return StudyReport(
        created=datetime.now(UTC),
        study_instance_uid=str(first.StudyInstanceUID),
        study_date=str(first.get("StudyDate", "")) or None,
        model_name=model_name,
        model_version=model_version,
        series=dict(series),
        lesion_count=lesion_report.lesion_count,
        total_lesion_volume_ml=lesion_report.total_volume_ml,
        brain_volume_ml=brain_volume_ml,
        lesions=lesions,
        timings_s=dict(timings_s or {}),
        seg_sop_instance_uid=str(seg.SOPInstanceUID) if seg is not None else None,
        sr_sop_instance_uid=str(sr.SOPInstanceUID) if sr is not None else None,
    )


def write_json_report(report: StudyReport, path: Path) -> Path:
    """Write ``report`` as indented JSON; atomically, so a watcher never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(report.model_dump_json(indent=2) + "\n")
        os.chmod(tmp_name, _FILE_MODE)  # mkstemp makes it owner-only; readers run as others
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def read_json_report(path: Path) -> StudyReport:
    """Read and validate a report written by :func:`write_json_report`.

    Raises:
        InputError: when the file is missing or is not a valid study report.
    """
    try:
        return StudyReport.model_validate_json(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read study report ({exc})") from exc
    except ValidationError as exc:
        raise InputError(f"{path}: not a valid study report: {exc}") from exc
