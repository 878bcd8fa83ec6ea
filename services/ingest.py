"""Ingest of one DICOM instance, shared by the C-STORE listener and the STOW-RS gateway.

The promise: an instance is reported stored only after its file is durably in the spool and
its row is committed. Failures carry the DICOM status (PS3.4 C-STORE / PS3.18 FailureReason)
the edges answer with.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import zlib
from enum import IntEnum, StrEnum
from pathlib import Path

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian
from sqlalchemy.exc import SQLAlchemyError

from mslesion.services.dicom.sop import SUPPORTED_SOP_CLASSES
from mslesion.services.errors import InputError, MSLesionError
from mslesion.services.store.database import Database
from mslesion.services.store.enums import Source
from mslesion.services.store.filestore import (
    StorageFullError,
    discard,
    publish,
    spool_relpath,
    stage_durably,
)
from mslesion.services.store.repositories import studies
from mslesion.services.store.repositories.studies import InstanceRecord

log = logging.getLogger(__name__)


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


# What ingest reads from a header; decoded eagerly so a bad value is refused here.
_IDENTIFIERS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID",
                "PatientID", "IssuerOfPatientID", "StudyDate")  # fmt: skip
_PIXEL_DATA = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
MAX_INFLATED_BYTES = 512 * 2**20  # far above any MR instance, far below a bomb's appetite
MAX_PATIENT_ID = 64  # LO, and the width of studies.patient_id and .issuer_of_patient_id


def read_header(data: bytes) -> Dataset:
    """Parse a Part 10 file's header (no pixel data), refusing what is not DICOM.

    Every standard element is decoded here, and the whole file is checked to be complete,
    so a damaged file is refused with 0xC000 instead of failing later in another form.
    """
    _refuse_deflate_bomb(data)
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        _decode_standard_elements(ds.file_meta)
        _decode_standard_elements(ds)
        for keyword in _IDENTIFIERS:
            str(ds.get(keyword, ""))
        problem = _incomplete(pydicom.dcmread(io.BytesIO(data)))
    except Exception as exc:  # pydicom raises many types for damaged data (zlib.error, ...)
        raise IngestError(
            DicomStatus.CANNOT_UNDERSTAND, f"not a readable DICOM Part 10 file: {exc}"
        ) from exc
    if problem:
        raise IngestError(DicomStatus.CANNOT_UNDERSTAND, problem)
    return ds


def _refuse_deflate_bomb(data: bytes) -> None:
    """Refuse a deflated data set that inflates beyond MAX_INFLATED_BYTES.

    pydicom inflates the whole stream before parsing, so a 1 MB bomb would cost gigabytes.
    The File Meta Information is explicit VR little endian and starts with its group length
    (0002,0000) UL right after the 128-byte preamble and "DICM".
    """
    if len(data) < 144 or data[128:132] != b"DICM" or data[132:138] != b"\x02\x00\x00\x00UL":
        return  # read_header's own parse judges this file
    meta_end = 144 + int.from_bytes(data[140:144], "little")
    if DeflatedExplicitVRLittleEndian.encode() not in data[144:meta_end]:
        return
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        inflater.decompress(data[meta_end:], MAX_INFLATED_BYTES)
    except zlib.error as exc:
        raise IngestError(
            DicomStatus.CANNOT_UNDERSTAND, f"deflated data set is not a valid stream: {exc}"
        ) from exc
    if inflater.unconsumed_tail:
        raise IngestError(
            DicomStatus.CANNOT_UNDERSTAND,
            f"deflated data set expands beyond {MAX_INFLATED_BYTES // 2**20} MiB",
        )


def _decode_standard_elements(ds: Dataset) -> None:
    """Decode every non-private element (sequences included); raises on an undecodable one."""
    for tag in list(ds.keys()):
        if tag.is_private:
            continue  # private elements are kept as sent, never interpreted
        elem = ds[tag]
        if elem.VR == "SQ":
            for item in elem.value:
                _decode_standard_elements(item)


def _incomplete(full: Dataset) -> str | None:
    """Why a fully read file is cut short, if it is."""
    if not str(full.file_meta.get("TransferSyntaxUID", "")).strip():
        return "truncated or incomplete File Meta Information: no Transfer Syntax UID (0002,0010)"
    if len(full) == 0:
        return "truncated DICOM file: File Meta Information but no data set"
    short = _short_element(full.file_meta) or _short_element(full)
    if short:
        return f"truncated DICOM file: {short}"
    sop_class = str(full.get("SOPClassUID", ""))
    if sop_class in SUPPORTED_SOP_CLASSES and not any(k in full for k in _PIXEL_DATA):
        return "truncated or incomplete DICOM file: the MR image has no Pixel Data"
    return None


def _short_element(ds: Dataset) -> str | None:
    for tag in list(ds.keys()):
        elem = ds.get_item(tag)  # raw: length as declared, value as read
        if isinstance(elem, RawDataElement):
            if elem.length != 0xFFFFFFFF and len(elem.value or b"") < elem.length:
                return (
                    f"element {tag} declares {elem.length} bytes but the file ends after "
                    f"{len(elem.value or b'')}"
                )
        elif elem is not None and elem.VR == "SQ":
            for item in elem.value:
                short = _short_element(item)
                if short:
                    return short
    return None


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
    patient_id = _lo(ds, "PatientID")
    issuer = _lo(ds, "IssuerOfPatientID")
    try:
        return InstanceRecord(
            study_uid=str(ds.StudyInstanceUID),
            series_uid=str(ds.SeriesInstanceUID),
            sop_instance_uid=str(ds.SOPInstanceUID),
            sop_class_uid=sop_class,
            patient_id=patient_id or None,
            issuer_of_patient_id=issuer or None,
            study_date=_date(ds.get("StudyDate")),
            path=path,
            size_bytes=size,
        )
    except AttributeError as exc:
        raise IngestError(
            DicomStatus.DATASET_DOES_NOT_MATCH, f"a required identifier is missing: {exc}"
        ) from exc


def _lo(ds: Dataset, keyword: str) -> str:
    """A patient identifier (LO) as stored: at most MAX_PATIENT_ID characters, no NUL."""
    value = str(ds.get(keyword, "") or "")
    if len(value) > MAX_PATIENT_ID or "\0" in value:
        raise IngestError(
            DicomStatus.DATASET_DOES_NOT_MATCH,
            f"{keyword} is not a valid LO value (at most {MAX_PATIENT_ID} characters, no NUL)",
        )
    return value


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
    """Durably store one instance; raise :class:`IngestError` with the status to answer.

    The file is staged and fsynced, then one transaction records the row and publishes the
    file under its final name (rename + folder fsync) before committing; a duplicate SOP
    Instance UID keeps the first file and its row.
    """
    try:
        rel = spool_relpath(
            str(ds.get("StudyInstanceUID", "")),
            str(ds.get("SeriesInstanceUID", "")),
            str(ds.get("SOPInstanceUID", "")),
        )
    except InputError as exc:
        raise IngestError(DicomStatus.DATASET_DOES_NOT_MATCH, str(exc)) from exc
    rec = record_for(ds, str(rel), len(data))
    final = spool_root / rel
    try:
        staged = stage_durably(final, data)
        try:
            with db.session() as session:
                new = studies.record_instance(session, rec, source, calling_aet)
                if new:  # visible before the row commits; a failed commit leaves a file the
                    publish(staged, final)  # sender's retry overwrites, never a row without one
        finally:
            discard(staged)
    except StorageFullError as exc:
        log.error("spool full: instance refused (0xA700)")
        raise IngestError(DicomStatus.OUT_OF_RESOURCES, "the node's storage is full") from exc
    except SQLAlchemyError as exc:
        log.error("database unavailable: instance refused (0xA701): %s", type(exc).__name__)
        raise IngestError(
            DicomStatus.OUT_OF_RESOURCES_DB, "the node's database is unavailable; retry later"
        ) from exc
    except studies.PatientConflictError as exc:
        raise IngestError(DicomStatus.DATASET_DOES_NOT_MATCH, str(exc)) from exc
    except OSError as exc:
        log.error("spool write failed: instance refused (0xA700): %s", exc.strerror)
        raise IngestError(
            DicomStatus.OUT_OF_RESOURCES, "the node could not store the file"
        ) from exc
    return IngestResult.STORED if new else IngestResult.DUPLICATE
