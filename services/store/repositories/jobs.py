"""Jobs: the state machine queued -> running -> succeeded | failed, kept in the database."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session, selectinload

from mslesion.services.store.enums import STUDY_SCOPE, JobState, ResultKind
from mslesion.services.store.tables import Job, ResultFile, Study, utcnow


class ResultRecord(BaseModel):
    """One result file to attach to a finished job or comparison."""

    kind: ResultKind
    part: int = 0  # the n-th file of its kind (secondary captures: 1, 2, ...), else 0
    path: str
    media_type: str
    study_uid: str | None = None
    series_uid: str | None = None
    sop_instance_uid: str | None = None
    sop_class_uid: str | None = None
    modality: str | None = None
    series_number: int | None = None
    series_description: str | None = None


class JobOutcome(BaseModel):
    """What a successful run reports."""

    timings_s: dict[str, float]
    series: list[dict[str, Any]]
    provider: str
    model: str
    lesion_count: int
    lesion_volume_ml: float
    brain_volume_ml: float | None
    results: list[ResultRecord]


def create_job(session: Session, study_id: int, created_by: str | None) -> Job:
    """A new queued job for a study."""
    job = Job(id=str(uuid.uuid4()), study_id=study_id, created_by=created_by)
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, job_id: str) -> Job | None:
    """The job with its study, results and forwards loaded, if it exists."""
    return session.scalar(
        select(Job)
        .where(Job.id == job_id)
        .options(selectinload(Job.study), selectinload(Job.results), selectinload(Job.forwards))
    )


def list_jobs(
    session: Session, *, state: JobState | None, limit: int, offset: int
) -> tuple[list[Job], int]:
    """A page of jobs, newest first, and the total count."""
    query = select(Job).options(selectinload(Job.study))
    count = select(func.count(Job.id))
    if state is not None:
        query = query.where(Job.state == state)
        count = count.where(Job.state == state)
    rows = session.scalars(query.order_by(Job.created_at.desc()).limit(limit).offset(offset))
    return list(rows), int(session.scalar(count) or 0)


def mark_enqueued(session: Session, job_id: str) -> None:
    """Remember when the job was last handed to the queue (for the reconciler)."""
    session.execute(update(Job).where(Job.id == job_id).values(enqueued_at=utcnow()))


def claim(
    session: Session,
    job_id: str,
    worker: str,
    *,
    lease_s: float | None = None,
    orphaned_by: str | None = None,
) -> Job | None:
    """Move a queued job to running; None if it is finished, unknown or running elsewhere.

    A job found 'running' is taken over (and restarted) only when its worker is presumed
    lost: it started more than ``lease_s`` seconds ago (the lease outlasts the worker's hard
    time limit, so no live run is that old), or it is still held by ``orphaned_by``, a
    worker the caller knows to be dead. Any other message for a running job is a duplicate.
    """
    takeover = []
    if lease_s is not None:
        cutoff = utcnow() - dt.timedelta(seconds=lease_s)
        takeover += [Job.started_at.is_(None), Job.started_at <= cutoff]
    if orphaned_by is not None:
        takeover.append(Job.worker == orphaned_by)
    claimable = Job.state == JobState.QUEUED
    if takeover:
        claimable = or_(claimable, and_(Job.state == JobState.RUNNING, or_(*takeover)))
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, claimable)
        .values(
            state=JobState.RUNNING,
            attempts=Job.attempts + 1,
            started_at=utcnow(),
            worker=worker,
            stage="starting",
            progress=0.0,
            error=None,
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return None
    return get_job(session, job_id)


def set_stage(session: Session, job_id: str, stage: str, progress: float) -> None:
    """Record the stage a running job has reached."""
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == JobState.RUNNING)
        .values(stage=stage, progress=progress)
    )


def succeed(session: Session, job_id: str, outcome: JobOutcome, worker: str | None = None) -> bool:
    """Store the outcome and result files of a running job; False if it was not running.

    With ``worker``, also False when that worker no longer holds the job (another one took it
    over).
    """
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == JobState.RUNNING, *_held_by(worker))
        .values(
            state=JobState.SUCCEEDED,
            stage="done",
            progress=1.0,
            finished_at=utcnow(),
            timings_s=outcome.timings_s,
            series=outcome.series,
            provider=outcome.provider,
            model=outcome.model,
            lesion_count=outcome.lesion_count,
            lesion_volume_ml=outcome.lesion_volume_ml,
            brain_volume_ml=outcome.brain_volume_ml,
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    session.execute(
        delete(ResultFile).where(ResultFile.job_id == job_id, ResultFile.scope == STUDY_SCOPE)
    )
    for rec in outcome.results:
        session.add(ResultFile(job_id=job_id, **rec.model_dump()))
    return True


def fail(
    session: Session,
    job_id: str,
    error: str,
    series: list[dict[str, Any]] | None = None,
    worker: str | None = None,
) -> None:
    """Mark a job failed with a readable reason (no retry follows).

    With ``worker``, only while that worker still holds the job.
    """
    values: dict[str, Any] = {"state": JobState.FAILED, "error": error, "finished_at": utcnow()}
    if series is not None:
        values["series"] = series
    session.execute(update(Job).where(Job.id == job_id, *_held_by(worker)).values(**values))


def back_to_queue(session: Session, job_id: str, error: str, worker: str | None = None) -> None:
    """A transient failure: the job waits for its retry.

    With ``worker``, only while that worker still holds it.
    """
    session.execute(
        update(Job)
        .where(Job.id == job_id, *_held_by(worker))
        .values(state=JobState.QUEUED, error=error, stage="waiting for retry")
    )


def _held_by(worker: str | None) -> list[Any]:
    if worker is None:
        return []
    return [Job.state == JobState.RUNNING, Job.worker == worker]


def lost_running(session: Session, lease_s: float, older_than_s: float) -> list[str]:
    """Jobs 'running' longer than ``lease_s``, not offered again in the last ``older_than_s`` s.

    Their worker is presumed lost.
    """
    now = utcnow()
    lease_cutoff = now - dt.timedelta(seconds=lease_s)
    offer_cutoff = now - dt.timedelta(seconds=older_than_s)
    rows = session.scalars(
        select(Job.id).where(
            Job.state == JobState.RUNNING,
            Job.started_at.is_(None) | (Job.started_at <= lease_cutoff),
            Job.enqueued_at.is_(None) | (Job.enqueued_at <= offer_cutoff),
        )
    )
    return list(rows)


def stale_queued(session: Session, older_than_s: float) -> list[str]:
    """Jobs queued but not enqueued (or not picked up) for longer than ``older_than_s``."""
    cutoff = utcnow() - dt.timedelta(seconds=older_than_s)
    rows = session.scalars(
        select(Job.id).where(
            Job.state == JobState.QUEUED,
            (Job.enqueued_at.is_(None)) | (Job.enqueued_at <= cutoff),
        )
    )
    return list(rows)


def jobs_for_study(session: Session, study_uid: str) -> list[Job]:
    """Every job of a study, oldest first."""
    rows = session.scalars(
        select(Job).join(Study).where(Study.study_uid == study_uid).order_by(Job.created_at)
    )
    return list(rows)
