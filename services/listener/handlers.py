"""Thin DIMSE handlers: C-ECHO answers, C-STORE hands the instance to ingest.

An instance is acknowledged (0x0000) only after :func:`services.ingest.store_instance` has
written its file durably and committed its row; every failure becomes the DICOM status that
ingest chose, with an ErrorComment. No patient identifier is ever logged.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydicom.dataset import Dataset
from pynetdicom.events import Event

from mslesion.services.ingest import DicomStatus, IngestError, store_instance
from mslesion.services.store.database import Database
from mslesion.services.store.enums import Source

log = logging.getLogger(__name__)

_ERROR_COMMENT_MAX = 64  # (0000,0902) Error Comment is LO


def handle_echo(event: Event) -> int:
    """C-ECHO: the node is reachable."""
    log.debug("C-ECHO from %s", _calling_aet(event))
    return int(DicomStatus.SUCCESS)


def handle_store(event: Event, db: Database, spool_root: Path) -> int | Dataset:
    """C-STORE: store the instance durably, then answer its DICOM status."""
    calling_aet = _calling_aet(event)
    try:
        data = event.encoded_dataset(include_meta=True)  # Part 10 bytes, exactly as sent
        ds = _header(event)
        result = store_instance(db, spool_root, ds, data, Source.DIMSE, calling_aet)
    except IngestError as exc:
        log.warning("C-STORE from %s refused: 0x%04X", calling_aet, int(exc.status))
        return failure(exc.status, exc.reason)
    log.debug(
        "C-STORE from %s: %s series %s instance %s",
        calling_aet,
        result.value,
        ds.get("SeriesInstanceUID", "?"),
        ds.get("SOPInstanceUID", "?"),
    )
    return int(DicomStatus.SUCCESS)


def _header(event: Event) -> Dataset:
    """The decoded dataset with its file meta; undecodable data is 0xC000."""
    try:
        ds = event.dataset
        ds.file_meta = event.file_meta
        # Touch the identifiers now: pydicom parses lazily, so damage surfaces here.
        for keyword in ("SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
            ds.get(keyword)
    except Exception as exc:  # any decode failure of the peer's bytes
        raise IngestError(
            DicomStatus.CANNOT_UNDERSTAND, f"the data set cannot be decoded: {type(exc).__name__}"
        ) from exc
    return ds


def failure(status: DicomStatus, reason: str) -> Dataset:
    """A C-STORE response status with an Error Comment (truncated to LO's 64 characters)."""
    rsp = Dataset()
    rsp.Status = int(status)
    rsp.ErrorComment = reason[:_ERROR_COMMENT_MAX]
    return rsp


def _calling_aet(event: Event) -> str:
    return str(event.assoc.requestor.ae_title).strip()
