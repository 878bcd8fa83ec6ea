"""Follow-up comparisons: planning (which prior a completed study is compared with) and states.

A comparison's states are those of a job: queued -> running -> succeeded | failed.

Planning rules (:func:`plan_after_job`), for a study whose job just succeeded:

* only a study with a PatientID and a StudyDate is compared automatically;
* its prior is another study of the same PatientID *and* IssuerOfPatientID (both absent counts
  as the same issuer) with a succeeded job and an earlier StudyDate: the latest such study
  (``latest_prior``) or the earliest (``baseline``). Studies on the same date as the current one,
  or without a date, are never priors; when two candidates share the chosen date, none is
  chosen (no order is guessed, least of all from UIDs);
* each study's newest succeeded job is the analysis compared;
* only the completed study is ever the current one: an older study arriving late gets at most
  its own comparison with its own earlier prior, and no comparison already made is re-run.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session, selectinload

from mslesion.services.errors import ConflictError, InputError
from mslesion.services.followup.model import FollowUpMode
from mslesion.services.store.enums import ComparisonState, ComparisonTrigger, JobState
from mslesion.services.store.repositories.jobs import ResultRecord
from mslesion.services.store.tables import Comparison, Job, ResultFile, Study, utcnow


@dataclass(frozen=True)
class Plan:
    """What planning decided: the comparison to offer (new or existing), or why none.

    ``reason`` names no patient data (it is logged).
    """

    comparison_id: str | None
    reason: str
    created: bool = False


@dataclass(frozen=True)
class Analysed:
    """A study of the patient and its newest succeeded job."""

    study: Study
    job: Job


class ComparisonOutcome(BaseModel):
    """What a successful comparison reports."""

    registration: dict[str, Any]
    counts: dict[str, int]
    activity: bool
    timings_s: dict[str, float]
    results: list[ResultRecord]


# --- planning ---------------------------------------------------------------------------------


def analysed_studies(session: Session, patient_id: str, issuer: str | None) -> list[Analysed]:
    """Each study of the patient (PatientID and issuer) with its newest succeeded job."""
    rows = session.execute(
        select(Study, Job)
        .join(Job, Job.study_id == Study.id)
        .where(
            Study.patient_id == patient_id,
            Study.issuer_of_patient_id.is_not_distinct_from(issuer),
            Job.state == JobState.SUCCEEDED,
        )
        .order_by(Job.finished_at, Job.created_at)
    ).all()
    newest: dict[int, Analysed] = {}
    for study, job in rows:  # ordered by finish time: later analyses replace earlier ones
        newest[study.id] = Analysed(study, job)
    return list(newest.values())


def newest_succeeded_job(session: Session, study_id: int) -> Job | None:
    """The study's newest succeeded job (the analysis a comparison uses)."""
    return session.scalar(
        select(Job)
        .where(Job.study_id == study_id, Job.state == JobState.SUCCEEDED)
        .order_by(Job.finished_at.desc(), Job.created_at.desc())
        .limit(1)
    )


def plan_after_job(
    session: Session, job_id: str, mode: FollowUpMode, *, created_by: str | None = "node"
) -> Plan:
    """Plan the automatic comparison of a just-succeeded job's study (see the module rules).

    Idempotent: the same two analyses are never planned twice.
    """
    if mode is FollowUpMode.OFF:
        return Plan(None, "follow-up reading is off (MSLESION_FOLLOWUP_MODE)")
    job = session.get(Job, job_id)
    if job is None or job.state != JobState.SUCCEEDED:
        return Plan(None, "the job has not succeeded")
    study = job.study
    if not study.patient_id:
        return Plan(None, "the study has no PatientID")
    if study.study_date is None:
        return Plan(
            None, "the study has no StudyDate: its place in the patient's history is unknown"
        )
    current_date = study.study_date
    earlier = [
        a
        for a in analysed_studies(session, study.patient_id, study.issuer_of_patient_id)
        if a.study.id != study.id
        and a.study.study_date is not None
        and a.study.study_date < current_date
    ]
    if not earlier:
        return Plan(None, "no earlier analysed study of this patient")
    dates = [a.study.study_date for a in earlier if a.study.study_date is not None]
    chosen = max(dates) if mode is FollowUpMode.LATEST_PRIOR else min(dates)
    on_date = [a for a in earlier if a.study.study_date == chosen]
    if len(on_date) > 1:
        return Plan(
            None,
            f"{len(on_date)} earlier studies share the prior's date: no prior chosen "
            "(request a comparison explicitly)",
        )
    prior = on_date[0]
    existing = session.scalar(
        select(Comparison.id).where(
            Comparison.current_job_id == job.id,
            Comparison.prior_job_id == prior.job.id,
            Comparison.trigger == ComparisonTrigger.AUTO,
        )
    )
    if existing is not None:
        return Plan(existing, "planned already")
    made = create_comparison(
        session, prior.job, job, trigger=ComparisonTrigger.AUTO, created_by=created_by
    )
    which = "latest earlier" if mode is FollowUpMode.LATEST_PRIOR else "earliest (baseline)"
    return Plan(made.id, f"planned against the {which} analysed study", True)


def create_comparison(
    session: Session,
    prior_job: Job,
    current_job: Job,
    *,
    trigger: ComparisonTrigger,
    created_by: str | None,
) -> Comparison:
    """A new queued comparison of two succeeded analyses of one patient."""
    current = current_job.study
    assert current.patient_id is not None
    row = Comparison(
        id=str(uuid.uuid4()),
        patient_id=current.patient_id,
        issuer=current.issuer_of_patient_id,
        prior_study_id=prior_job.study_id,
        current_study_id=current_job.study_id,
        prior_job_id=prior_job.id,
        current_job_id=current_job.id,
        trigger=trigger,
        created_by=created_by,
    )
    session.add(row)
    session.flush()
    return row


def request_comparison(
    session: Session, prior: Study, current: Study, created_by: str | None
) -> Comparison:
    """An explicit (manual) comparison of two studies' newest analyses: a re-analysis.

    Raises:
        InputError: the two are one study, or the prior is dated after the current study.
        ConflictError: they are not one patient's (PatientID and issuer), one of them has no
            succeeded analysis, or a comparison of these two analyses is queued or running.
    """
    if prior.id == current.id:
        raise InputError("a study cannot be compared with itself: name two studies")
    if not current.patient_id or (prior.patient_id, prior.issuer_of_patient_id) != (
        current.patient_id,
        current.issuer_of_patient_id,
    ):
        raise ConflictError(
            "the two studies do not belong to one patient (PatientID and IssuerOfPatientID)"
        )
    if prior.study_date and current.study_date and prior.study_date > current.study_date:
        raise InputError(
            f"the prior study ({prior.study_date.isoformat()}) is dated after the current one "
            f"({current.study_date.isoformat()}): swap them"
        )
    prior_job = newest_succeeded_job(session, prior.id)
    current_job = newest_succeeded_job(session, current.id)
    for role, found in (("prior", prior_job), ("current", current_job)):
        if found is None:
            raise ConflictError(f"the {role} study has no succeeded analysis to compare")
    assert prior_job is not None and current_job is not None
    busy = session.scalar(
        select(Comparison.id).where(
            Comparison.prior_job_id == prior_job.id,
            Comparison.current_job_id == current_job.id,
            Comparison.state.in_((ComparisonState.QUEUED, ComparisonState.RUNNING)),
        )
    )
    if busy is not None:
        raise ConflictError(f"comparison {busy} of these two analyses is queued or running")
    return create_comparison(
        session, prior_job, current_job, trigger=ComparisonTrigger.MANUAL, created_by=created_by
    )


# --- reading -----------------------------------------------------------------------------------


def get_comparison(session: Session, comparison_id: str) -> Comparison | None:
    """The comparison with its studies, results and forwards loaded, if it exists."""
    return session.scalar(
        select(Comparison)
        .where(Comparison.id == comparison_id)
        .options(
            selectinload(Comparison.prior_study),
            selectinload(Comparison.current_study),
            selectinload(Comparison.results),
            selectinload(Comparison.forwards),
        )
    )


def queued_for_job(session: Session, job_id: str) -> list[str]:
    """Queued comparisons whose current analysis is this job (to offer once it succeeded)."""
    rows = session.scalars(
        select(Comparison.id)
        .where(Comparison.current_job_id == job_id, Comparison.state == ComparisonState.QUEUED)
        .order_by(Comparison.created_at)
    )
    return list(rows)


def comparisons_of_patient(session: Session, patient_id: str) -> list[Comparison]:
    """A patient's comparisons (every issuer), oldest first."""
    rows = session.scalars(
        select(Comparison)
        .where(Comparison.patient_id == patient_id)
        .options(selectinload(Comparison.prior_study), selectinload(Comparison.current_study))
        .order_by(Comparison.created_at)
    )
    return list(rows)


# --- the state machine (as repositories.jobs) --------------------------------------------------


def mark_enqueued(session: Session, comparison_id: str) -> None:
    """Remember when the comparison was last handed to the queue (for the reconciler)."""
    session.execute(
        update(Comparison).where(Comparison.id == comparison_id).values(enqueued_at=utcnow())
    )


def claim(
    session: Session,
    comparison_id: str,
    worker: str,
    *,
    lease_s: float | None = None,
    orphaned_by: str | None = None,
) -> Comparison | None:
    """Move a queued comparison to running; None if finished, unknown or running elsewhere.

    A running one is taken over only past its lease or from a worker known to be dead
    (see :func:`repositories.jobs.claim`).
    """
    takeover = []
    if lease_s is not None:
        cutoff = utcnow() - dt.timedelta(seconds=lease_s)
        takeover += [Comparison.started_at.is_(None), Comparison.started_at <= cutoff]
    if orphaned_by is not None:
        takeover.append(Comparison.worker == orphaned_by)
    claimable = Comparison.state == ComparisonState.QUEUED
    if takeover:
        claimable = or_(
            claimable, and_(Comparison.state == ComparisonState.RUNNING, or_(*takeover))
        )
    result = session.execute(
        update(Comparison)
        .where(Comparison.id == comparison_id, claimable)
        .values(
            state=ComparisonState.RUNNING,
            attempts=Comparison.attempts + 1,
            started_at=utcnow(),
            worker=worker,
            error=None,
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return None
    return get_comparison(session, comparison_id)


def succeed(
    session: Session, comparison_id: str, outcome: ComparisonOutcome, worker: str | None = None
) -> bool:
    """Store the outcome and result files of a running comparison; False if not running.

    With ``worker``, also False when that worker no longer holds it. Result files belong to
    the current study's job, scoped by the comparison's id.
    """
    result = session.execute(
        update(Comparison)
        .where(
            Comparison.id == comparison_id,
            Comparison.state == ComparisonState.RUNNING,
            *_held_by(worker),
        )
        .values(
            state=ComparisonState.SUCCEEDED,
            finished_at=utcnow(),
            registration=outcome.registration,
            counts=outcome.counts,
            activity=outcome.activity,
            timings_s=outcome.timings_s,
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    current_job_id = session.scalar(
        select(Comparison.current_job_id).where(Comparison.id == comparison_id)
    )
    session.execute(delete(ResultFile).where(ResultFile.scope == comparison_id))
    for rec in outcome.results:
        session.add(
            ResultFile(
                job_id=current_job_id,
                comparison_id=comparison_id,
                scope=comparison_id,
                **rec.model_dump(),
            )
        )
    session.flush()
    return True


def fail(
    session: Session,
    comparison_id: str,
    error: str,
    *,
    registration: dict[str, Any] | None = None,
    worker: str | None = None,
) -> None:
    """Mark a comparison failed with a readable reason (no retry follows).

    ``registration``: the failed registration's summary, when that was the reason.
    """
    values: dict[str, Any] = {
        "state": ComparisonState.FAILED,
        "error": error,
        "finished_at": utcnow(),
    }
    if registration is not None:
        values["registration"] = registration
    session.execute(
        update(Comparison).where(Comparison.id == comparison_id, *_held_by(worker)).values(**values)
    )


def back_to_queue(
    session: Session, comparison_id: str, error: str, worker: str | None = None
) -> None:
    """A transient failure: the comparison waits for its retry."""
    session.execute(
        update(Comparison)
        .where(Comparison.id == comparison_id, *_held_by(worker))
        .values(state=ComparisonState.QUEUED, error=error)
    )


def _held_by(worker: str | None) -> list[Any]:
    if worker is None:
        return []
    return [Comparison.state == ComparisonState.RUNNING, Comparison.worker == worker]


def stale_queued(session: Session, older_than_s: float) -> list[str]:
    """Comparisons queued but not offered (or not picked up) for longer than ``older_than_s``.

    One never offered counts from its creation: the worker that planned it offers it right
    after the job's own forwarding, and a reconciler must not overtake it.
    """
    cutoff = utcnow() - dt.timedelta(seconds=older_than_s)
    rows = session.scalars(
        select(Comparison.id).where(
            Comparison.state == ComparisonState.QUEUED,
            or_(
                and_(Comparison.enqueued_at.is_(None), Comparison.created_at <= cutoff),
                Comparison.enqueued_at <= cutoff,
            ),
        )
    )
    return list(rows)


def lost_running(session: Session, lease_s: float, older_than_s: float) -> list[str]:
    """Comparisons 'running' past ``lease_s``, not offered again in the last ``older_than_s``."""
    now = utcnow()
    lease_cutoff = now - dt.timedelta(seconds=lease_s)
    offer_cutoff = now - dt.timedelta(seconds=older_than_s)
    rows = session.scalars(
        select(Comparison.id).where(
            Comparison.state == ComparisonState.RUNNING,
            Comparison.started_at.is_(None) | (Comparison.started_at <= lease_cutoff),
            Comparison.enqueued_at.is_(None) | (Comparison.enqueued_at <= offer_cutoff),
        )
    )
    return list(rows)
