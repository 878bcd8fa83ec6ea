"""Studies and received instances."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mslesion.services.errors import ConflictError
from mslesion.services.store.enums import Source, StudyState
from mslesion.services.store.tables import Instance, Study, utcnow


class InstanceRecord(BaseModel):
    """What the database keeps of one received instance."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    patient_id: str | None = None
    issuer_of_patient_id: str | None = None  # (0010,0021): with patient_id, whose history
    study_date: dt.date | None = None
    path: str
    size_bytes: int


def instance_exists(session: Session, sop_instance_uid: str) -> bool:
    """True if this SOP Instance UID was already stored (duplicates are idempotent)."""
    found = session.scalar(select(Instance.id).where(Instance.sop_instance_uid == sop_instance_uid))
    return found is not None


class PatientConflictError(ConflictError):
    """An instance names a study that belongs to another patient."""


def record_instance(
    session: Session, rec: InstanceRecord, source: Source, calling_aet: str | None
) -> bool:
    """Record a durably written instance; returns False if it was already known.

    A new instance reopens a completed study, so late series start a fresh quiet period.
    Raises :class:`PatientConflictError` when the study is known under another PatientID.
    """
    study = get_study(session, rec.study_uid)
    if study is None:
        if instance_exists(session, rec.sop_instance_uid):
            return False  # a known instance re-sent under another study: keep the first
        study = _get_or_create_study(session, rec, source, calling_aet)
    if (study.patient_id or None) != (rec.patient_id or None):
        raise PatientConflictError(
            "StudyInstanceUID already received with a different PatientID; "
            "one study cannot belong to two patients"
        )
    if rec.issuer_of_patient_id and not study.issuer_of_patient_id:
        # an issuer first sent with a later instance completes the study's key (never replaced)
        study.issuer_of_patient_id = rec.issuer_of_patient_id
    values = {
        "study_id": study.id,
        "series_uid": rec.series_uid,
        "sop_instance_uid": rec.sop_instance_uid,
        "sop_class_uid": rec.sop_class_uid,
        "path": rec.path,
        "size_bytes": rec.size_bytes,
        "received_at": utcnow(),
    }
    # One round trip, no savepoint: a concurrent duplicate is skipped by the database itself.
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(Instance).values(**values).on_conflict_do_nothing().returning(Instance.id)
    if session.execute(stmt).first() is None:
        return False
    session.execute(
        update(Study)
        .where(Study.id == study.id)
        .values(
            instance_count=Study.instance_count + 1,
            last_received_at=utcnow(),
            state=StudyState.RECEIVING,
        )
    )
    return True


def _get_or_create_study(
    session: Session, rec: InstanceRecord, source: Source, calling_aet: str | None
) -> Study:
    study = get_study(session, rec.study_uid)
    if study is not None:
        return study
    try:
        with session.begin_nested():
            study = Study(
                study_uid=rec.study_uid,
                patient_id=rec.patient_id,
                issuer_of_patient_id=rec.issuer_of_patient_id,
                study_date=rec.study_date,
                source=source,
                calling_aet=calling_aet,
            )
            session.add(study)
        return study
    except IntegrityError:
        found = get_study(session, rec.study_uid)
        assert found is not None  # the other writer committed it
        return found


def get_study(session: Session, study_uid: str) -> Study | None:
    """The study with this StudyInstanceUID, if any."""
    return session.scalar(select(Study).where(Study.study_uid == study_uid))


def get_study_by_id(session: Session, study_id: int) -> Study | None:
    """The study with this primary key, if any."""
    return session.get(Study, study_id)


def quiet_studies(session: Session, quiet_s: float) -> list[int]:
    """Ids of studies still receiving whose last instance arrived over ``quiet_s`` ago."""
    cutoff = utcnow() - dt.timedelta(seconds=quiet_s)
    rows = session.scalars(
        select(Study.id).where(
            Study.state == StudyState.RECEIVING, Study.last_received_at <= cutoff
        )
    )
    return list(rows)


def close_study(session: Session, study_id: int, quiet_s: float | None = None) -> bool:
    """Mark a receiving study complete; True only for the one caller that made the change.

    With ``quiet_s`` the study must still be quiet (no instance arrived meanwhile).
    """
    stmt = update(Study).where(Study.id == study_id, Study.state == StudyState.RECEIVING)
    if quiet_s is not None:
        stmt = stmt.where(Study.last_received_at <= utcnow() - dt.timedelta(seconds=quiet_s))
    result = session.execute(stmt.values(state=StudyState.COMPLETE))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def series_instance_paths(session: Session, study_id: int, series_uid: str) -> list[str]:
    """Spool paths (relative) of every instance of one series of a study."""
    rows = session.scalars(
        select(Instance.path).where(
            Instance.study_id == study_id, Instance.series_uid == series_uid
        )
    )
    return list(rows)


def study_instance_paths(session: Session, study_id: int) -> list[str]:
    """Spool paths (relative) of every instance of a study."""
    return list(session.scalars(select(Instance.path).where(Instance.study_id == study_id)))
