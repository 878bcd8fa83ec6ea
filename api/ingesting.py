"""Ingest of instances that arrive over HTTP (STOW-RS parts, zip members): one outcome each.

The gateway's edge of services/ingest.py: each instance is stored durably or refused with
the DICOM status that STOW-RS reports as FailureReason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from mslesion.services.ingest import (
    DicomStatus,
    IngestError,
    IngestResult,
    read_header,
    store_instance,
)
from mslesion.services.jobs import Dispatcher, close_study_now
from mslesion.services.store.database import Database
from mslesion.services.store.enums import Source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What became of one instance. ``status`` is 0 when stored (or already known)."""

    sop_class_uid: str | None
    sop_instance_uid: str | None
    study_uid: str | None
    series_uid: str | None
    status: int
    reason: str = ""
    new: bool = False  # stored now (False for duplicates and failures)

    @property
    def ok(self) -> bool:
        """Stored now or before."""
        return self.status == DicomStatus.SUCCESS


def ingest_bytes(
    db: Database,
    spool_root: Path,
    data: bytes,
    source: Source,
    *,
    expected_study: str | None = None,
) -> Outcome:
    """Store one Part 10 instance; a failure becomes an outcome with its DICOM status."""
    try:
        ds = read_header(data)
    except IngestError as exc:
        return Outcome(None, None, None, None, int(exc.status), exc.reason)
    meta = getattr(ds, "file_meta", None)
    sop_class = _text(ds.get("SOPClassUID")) or _text(
        meta.get("MediaStorageSOPClassUID") if meta is not None else None
    )
    sop_instance = _text(ds.get("SOPInstanceUID")) or _text(
        meta.get("MediaStorageSOPInstanceUID") if meta is not None else None
    )
    study, series = _text(ds.get("StudyInstanceUID")), _text(ds.get("SeriesInstanceUID"))
    ids = (sop_class, sop_instance, study, series)
    if expected_study is not None and study != expected_study:
        reason = "the instance belongs to another study than the one in the request URL"
        return Outcome(*ids, int(DicomStatus.DATASET_DOES_NOT_MATCH), reason)
    try:
        result = store_instance(db, spool_root, ds, data, source, None)
    except IngestError as exc:
        return Outcome(*ids, int(exc.status), exc.reason)
    return Outcome(*ids, int(DicomStatus.SUCCESS), new=result == IngestResult.STORED)


def complete_studies(
    db: Database, dispatcher: Dispatcher, outcomes: list[Outcome], created_by: str
) -> dict[str, str]:
    """Create a job for each study that received new instances; study UID -> job id.

    If the database fails here the instances stay stored and the listener's quiet-study
    monitor completes the study later, so the upload itself is not failed.
    """
    created: dict[str, str] = {}
    for study_uid in dict.fromkeys(o.study_uid for o in outcomes if o.new and o.study_uid):
        assert study_uid is not None
        try:
            job_id = close_study_now(db, dispatcher, study_uid, created_by=created_by)
        except SQLAlchemyError as exc:
            log.warning("study not completed after upload (%s); left to the monitor", exc)
            continue
        if job_id:
            created[study_uid] = job_id
    return created


def _text(value: object) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None
