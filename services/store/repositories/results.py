"""Result files, and the DICOM result instances QIDO-RS/WADO-RS serve."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from mslesion.services.store.enums import JobState, ResultKind
from mslesion.services.store.tables import Job, ResultFile

DICOM_KINDS = (ResultKind.SEG, ResultKind.SR)


def result_file(session: Session, job_id: str, kind: ResultKind) -> ResultFile | None:
    """One result file of a succeeded job."""
    return session.scalar(
        select(ResultFile)
        .join(Job)
        .where(
            ResultFile.job_id == job_id,
            ResultFile.kind == kind,
            Job.state == JobState.SUCCEEDED,
        )
    )


def dicom_results(
    session: Session,
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    modality: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[ResultFile]:
    """Result SEG/SR instances matching the given attributes (QIDO-RS / WADO-RS)."""
    query = (
        select(ResultFile)
        .join(Job)
        .where(ResultFile.kind.in_(DICOM_KINDS), Job.state == JobState.SUCCEEDED)
    )
    if study_uid:
        query = query.where(ResultFile.study_uid == study_uid)
    if series_uid:
        query = query.where(ResultFile.series_uid == series_uid)
    if sop_uid:
        query = query.where(ResultFile.sop_instance_uid == sop_uid)
    if modality:
        query = query.where(ResultFile.modality == modality)
    query = query.order_by(ResultFile.id).limit(limit).offset(offset)
    return list(session.scalars(query))


def job_dicom_files(session: Session, job_id: str) -> list[ResultFile]:
    """The SEG and SR of one job (what forwarding sends)."""
    return list(
        session.scalars(
            select(ResultFile).where(ResultFile.job_id == job_id, ResultFile.kind.in_(DICOM_KINDS))
        )
    )
