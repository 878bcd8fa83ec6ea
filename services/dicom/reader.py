"""Read a DICOM MR study from a folder or a zip archive and assemble series into volumes.

Reading takes two passes so that memory stays bounded by one series, not by the study:
:func:`read_study` parses only the headers of every file (``stop_before_pixels``) and groups
them into series; :func:`load_series_volume` decodes the pixels of one (selected) series and
checks that its slices form a regular 3D grid.

Volumes are SimpleITK images in DICOM patient coordinates (LPS, as ITK uses): origin is the
first slice's ImagePositionPatient, axes are the row direction, the column direction and the
slice normal (row × column), so the z axis runs along increasing position on the normal.

This module is the reading API; the work is done by one module per concern: ``sources``
(folders, zip members) behind ``zipguard`` (archive checks), ``headers`` (header pass) with
``attributes`` (header values), ``grouping`` (series summaries, one study per input),
``checks`` (SOP class, transfer syntax), ``geometry`` (slice stacking, also checked from
headers alone by :func:`stack_problem`) and ``pixels``
(decoding, volume assembly).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from pathlib import Path

from mslesion.services.dicom.checks import series_problem, transfer_syntax_problem, uid_label
from mslesion.services.dicom.errors import DicomInputError
from mslesion.services.dicom.geometry import stack_problem
from mslesion.services.dicom.grouping import group_series, refuse_mixed_studies
from mslesion.services.dicom.headers import read_instances
from mslesion.services.dicom.pixels import load_series_volume, read_source_datasets
from mslesion.services.dicom.sop import ENHANCED_MR_IMAGE_STORAGE, MR_IMAGE_STORAGE
from mslesion.services.dicom.sources import SourceFile, folder_sources, zip_sources
from mslesion.services.dicom.study import Series, SeriesVolume, SourceFrame, Study
from mslesion.services.dicom.zipguard import ZipLimits

# The reading API in one place; each name lives in the module of its concern.
__all__ = [
    "ENHANCED_MR_IMAGE_STORAGE",
    "MR_IMAGE_STORAGE",
    "Series",
    "SeriesVolume",
    "SourceFile",
    "SourceFrame",
    "Study",
    "ZipLimits",
    "load_series_volume",
    "read_source_datasets",
    "read_study",
    "series_problem",
    "stack_problem",
    "transfer_syntax_problem",
    "uid_label",
]


def read_study(path: Path, *, zip_limits: ZipLimits | None = None) -> Study:
    """Read the headers of every DICOM file under a folder (recursively) or in a zip archive.

    Non-DICOM files (no ``DICM`` prefix) and DICOMDIR are skipped and listed in
    ``Study.skipped``. Raises :class:`DicomInputError` for a file that has the DICOM prefix but
    cannot be parsed, for zip path traversal or oversized archives, for an input without DICOM
    images and for an input that mixes several studies.
    """
    if path.is_dir():
        sources: Iterable[SourceFile] = folder_sources(path)
    elif path.is_file() and zipfile.is_zipfile(path):
        sources = zip_sources(path, zip_limits or ZipLimits())
    elif path.exists():
        raise DicomInputError(f"{path}: neither a folder nor a zip archive")
    else:
        raise DicomInputError(f"{path}: no such file or folder")
    instances, skipped = read_instances(sources, path)
    if not instances:
        raise DicomInputError(
            f"{path}: no DICOM files found ({len(skipped)} other file(s) skipped)"
        )
    refuse_mixed_studies(instances)
    first = instances[0].header
    return Study(
        study_uid=instances[0].uid("StudyInstanceUID"),
        patient_id=str(first.get("PatientID", "")),
        study_date=str(first.get("StudyDate", "")),
        series=group_series(instances),
        skipped=skipped,
        source=path,
    )
