"""Ingest of one DICOM instance, shared by the C-STORE listener and the STOW-RS gateway.

The promise: an instance is reported stored only after its file is durably in the spool and
its row is committed. Failures carry the DICOM status (PS3.4 C-STORE / PS3.18 FailureReason)
the edges answer with.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from enum import IntEnum, StrEnum
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    EnhancedMRImageStorage,
    LegacyConvertedEnhancedMRImageStorage,
    MRImageStorage,
)
from sqlalchemy.exc import SQLAlchemyError

from services.errors import InputError, MSLesionError
from services.store.database import Database
from services.store.enums import Source
from services.store.filestore import StorageFullError, spool_relpath, write_durably
from services.store.repositories import studies
from services.store.repositories.studies import InstanceRecord

log = logging.getLogger(__name__)

SUPPORTED_SOP_CLASSES = (
    MRImageStorage,
    EnhancedMRImageStorage,
    LegacyConvertedEnhancedMRImageStorage,
)


class DicomStatus(IntEnum):
    """The DICOM statuses ingest can end with (C-STORE Status, STOW-RS FailureReason)."""

    SUCCESS = 0x0000
    PROCESSING_FAILURE = 0x0110
    SOP_CLASS_NOT_SUPPORTED = 0x0122
    OUT_OF_RESOURCES = 0xA700  # disk full
    OUT_OF_RESOURCES_DB = 0xA701  # database unreachable: the sender should retry later
    DATASET_DOES_NOT_MATCH = 0xA900
    CANNOT_UNDERSTAND = 0xC000


class IngestResult(StrEnum):
    """A successful ingest either stored a new instance or recognised a duplicate."""

    STORED = "stored"
    DUPLICATE = "duplicate"


class IngestError(MSLesionError):
    """An instance could not be stored; ``status`` is the DICOM status to answer with."""

    def __init__(self, status: DicomStatus, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"{reason} (DICOM status 0x{int(status):04X})")

    @property
    def transient(self) -> bool:
        """True when the sender should retry later (resources), not fix the data."""
        return self.status in (DicomStatus.OUT_OF_RESOURCES, DicomStatus.OUT_OF_RESOURCES_DB)


def read_header(data: bytes) -> Dataset:
    """Parse a Part 10 file's header (no pixel data), refusing what is not DICOM."""
    try:
        return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, OSError) as exc:
        raise IngestError(
            DicomStatus.CANNOT_UNDERSTAND, f"not a readable DICOM Part 10 file: {exc}"
        ) from exc


def record_for(ds: Dataset, path: str, size: int) -> InstanceRecord:
    """Validate an instance's identifiers and SOP class; the database row it becomes."""
    sop_class = str(
        ds.get("SOPClassUID", "") or getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID", "")
    )
    if sop_class not in SUPPORTED_SOP_CLASSES:
        raise IngestError(
            DicomStatus.SOP_CLASS_NOT_SUPPORTED,
            f"SOP Class {sop_class or '(missing)'} is not MR image storage",
        )
    try:
        return InstanceRecord(
            study_uid=str(ds.StudyInstanceUID),
            series_uid=str(ds.SeriesInstanceUID),
            sop_instance_uid=str(ds.SOPInstanceUID),
            sop_class_uid=sop_class,
            patient_id=str(ds.get("PatientID", "") or "") or None,
            study_date=_date(ds.get("StudyDate")),
            path=path,
            size_bytes=size,
        )
    except AttributeError as exc:
        raise IngestError(
            DicomStatus.DATASET_DOES_NOT_MATCH, f"a required identifier is missing: {exc}"
        ) from exc


def _date(value: object) -> dt.date | None:
    text = str(value or "").strip()
    try:
        return dt.datetime.strptime(text[:8], "%Y%m%d").date() if text else None
    except ValueError:
        return None


def store_instance(
    db: Database,
    spool_root: Path,
    ds: Dataset,
    data: bytes,
    source: Source,
    calling_aet: str | None,
) -> IngestResult:
    """Durably store one instance (file first, then its row); raise :class:`IngestError`."""
    try:
        rel = spool_relpath(
            str(ds.get("StudyInstanceUID", "")),
            str(ds.get("SeriesInstanceUID", "")),
            str(ds.get("SOPInstanceUID", "")),
        )
    except InputError as exc:
        raise IngestError(DicomStatus.DATASET_DOES_NOT_MATCH, str(exc)) from exc
    rec = record_for(ds, str(rel), len(data))
    try:
        with db.session() as session:
            if studies.instance_exists(session, rec.sop_instance_uid):
                return IngestResult.DUPLICATE
        write_durably(spool_root / rel, data)
        with db.session() as session:
            new = studies.record_instance(session, rec, source, calling_aet)
    except StorageFullError as exc:
        log.error("spool full: instance refused (0xA700)")
        raise IngestError(DicomStatus.OUT_OF_RESOURCES, "the node's storage is full") from exc
    except SQLAlchemyError as exc:
        log.error("database unavailable: instance refused (0xA701): %s", type(exc).__name__)
        raise IngestError(
            DicomStatus.OUT_OF_RESOURCES_DB, "the node's database is unavailable; retry later"
        ) from exc
    except OSError as exc:
        log.error("spool write failed: instance refused (0xA700): %s", exc.strerror)
        raise IngestError(
            DicomStatus.OUT_OF_RESOURCES, "the node could not store the file"
        ) from exc
    return IngestResult.STORED if new else IngestResult.DUPLICATE
