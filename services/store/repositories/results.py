"""Result files, and the DICOM result instances QIDO-RS/WADO-RS serve.

A job's own files have scope ``""``; a comparison's (follow-up SEG, SR, secondary captures,
JSON, PNG) belong to its current study's job and carry the comparison's id as their scope.
"""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from mslesion.services.store.enums import (
    DICOM_RESULT_KINDS,
    STUDY_SCOPE,
    ComparisonState,
    JobState,
    ResultKind,
)
from mslesion.services.store.tables import Comparison, Job, ResultFile

DICOM_KINDS = tuple(sorted(DICOM_RESULT_KINDS))
STUDY_DICOM_KINDS = (ResultKind.SEG, ResultKind.SR)


def result_file(session: Session, job_id: str, kind: ResultKind) -> ResultFile | None:
    """One of a succeeded job's own result files."""
    return session.scalar(
        select(ResultFile)
        .join(Job)
        .where(
            ResultFile.job_id == job_id,
            ResultFile.scope == STUDY_SCOPE,
            ResultFile.kind == kind,
            Job.state == JobState.SUCCEEDED,
        )
    )


def comparison_file(
    session: Session, comparison_id: str, kind: ResultKind, part: int = 0
) -> ResultFile | None:
    """One result file of a succeeded comparison (``part``: the n-th secondary capture)."""
    return session.scalar(
        select(ResultFile)
        .join(Comparison, ResultFile.comparison_id == Comparison.id)
        .where(
            ResultFile.scope == comparison_id,
            ResultFile.kind == kind,
            ResultFile.part == part,
            Comparison.state == ComparisonState.SUCCEEDED,
        )
    )


def comparison_files(session: Session, comparison_id: str) -> list[ResultFile]:
    """Every result file of a comparison, whatever its state."""
    return list(
        session.scalars(
            select(ResultFile)
            .where(ResultFile.scope == comparison_id)
            .order_by(ResultFile.kind, ResultFile.part)
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
    """Result DICOM instances matching the given attributes (QIDO-RS / WADO-RS).

    A job's SEG and SR once it succeeded; a comparison's SEG, SR and secondary captures once
    the comparison succeeded.
    """
    query = (
        select(ResultFile)
        .join(Job, ResultFile.job_id == Job.id)
        .outerjoin(Comparison, ResultFile.comparison_id == Comparison.id)
        .where(
            ResultFile.kind.in_(DICOM_KINDS),
            Job.state == JobState.SUCCEEDED,
            or_(ResultFile.scope == STUDY_SCOPE, Comparison.state == ComparisonState.SUCCEEDED),
        )
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
            select(ResultFile).where(
                ResultFile.job_id == job_id,
                ResultFile.scope == STUDY_SCOPE,
                ResultFile.kind.in_(STUDY_DICOM_KINDS),
            )
        )
    )


def comparison_dicom_files(session: Session, comparison_id: str) -> list[ResultFile]:
    """The follow-up SEG, SR and secondary captures of one comparison (what it forwards)."""
    return list(
        session.scalars(
            select(ResultFile)
            .where(ResultFile.scope == comparison_id, ResultFile.kind.in_(DICOM_KINDS))
            .order_by(ResultFile.kind, ResultFile.part)
        )
    )
