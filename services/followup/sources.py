"""The DICOM images a follow-up output references: the FLAIR series an analysis used."""

from __future__ import annotations

from pathlib import Path

from pydicom import Dataset

from mslesion.services.dicom.reader import load_series_volume, read_source_datasets, read_study
from mslesion.services.dicom.zipguard import ZipLimits
from mslesion.services.errors import InputError
from mslesion.services.reporting.json_report import StudyReport


def flair_sources(
    study_path: Path, report: StudyReport, zip_limits: ZipLimits | None = None
) -> list[Dataset]:
    """The FLAIR datasets (in the analysis's slice order) of the study ``report`` describes.

    Raises:
        InputError: when the study at ``study_path`` lacks the FLAIR series the report used.
    """
    used = report.series.get("flair")
    if used is None:
        raise InputError("the study report names no FLAIR series")
    study = read_study(study_path, zip_limits=zip_limits)
    try:
        series = study.find(used.series_instance_uid)
    except KeyError:
        raise InputError(
            f"{study_path}: the FLAIR series the analysis used "
            f"({used.series_instance_uid}) is not in this study"
        ) from None
    return read_source_datasets(load_series_volume(series))
