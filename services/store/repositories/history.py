"""Per-patient lesion-load history: the latest successful analysis of each study.

Each study also carries what the follow-up comparison of that analysis found: new and
enlarging lesions, and activity.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session, aliased

from mslesion.services.followup.model import ChangeCategory
from mslesion.services.store.enums import ComparisonState, JobState
from mslesion.services.store.tables import Comparison, Job, Study


class ComparisonRef(BaseModel):
    """The comparison a study's follow-up numbers came from."""

    id: str
    prior_study_uid: str
    prior_study_date: dt.date | None


class StudyLoad(BaseModel):
    """One analysed study of a patient."""

    study_uid: str
    study_date: dt.date | None
    job_id: str
    lesion_count: int
    lesion_volume_ml: float
    brain_volume_ml: float | None
    analysed_at: dt.datetime | None
    new_count: int | None = Field(
        default=None, description="new lesions since the prior (None: not compared)"
    )
    enlarging_count: int | None = Field(
        default=None, description="enlarging lesions since the prior (None: not compared)"
    )
    activity: bool | None = Field(
        default=None, description="any new or enlarging lesion (None: not compared)"
    )
    comparison: ComparisonRef | None = Field(
        default=None, description="the comparison these follow-up numbers came from"
    )


def patient_studies(session: Session, patient_id: str) -> list[StudyLoad]:
    """Each analysed study of ``patient_id`` once (its newest successful job), by date.

    A study whose analysis was compared with a prior carries that comparison's new and
    enlarging counts and activity (the newest succeeded comparison of that very analysis).
    """
    return _loads(session, Study.patient_id == patient_id)


def patient_history(session: Session, patient_id: str, issuer: str | None) -> list[StudyLoad]:
    """As :func:`patient_studies`, for one issuer of the PatientID (the follow-up's patient)."""
    return _loads(
        session,
        Study.patient_id == patient_id,
        Study.issuer_of_patient_id.is_not_distinct_from(issuer),
    )


def _loads(session: Session, *where: ColumnElement[bool]) -> list[StudyLoad]:
    rows = session.execute(
        select(Job, Study)
        .join(Study)
        .where(*where, Job.state == JobState.SUCCEEDED)
        .order_by(Job.finished_at)
    ).all()
    latest: dict[str, StudyLoad] = {}
    for job, study in rows:  # ordered by finish time: later analyses replace earlier ones
        latest[study.study_uid] = StudyLoad(
            study_uid=study.study_uid,
            study_date=study.study_date,
            job_id=job.id,
            lesion_count=job.lesion_count or 0,
            lesion_volume_ml=job.lesion_volume_ml or 0.0,
            brain_volume_ml=job.brain_volume_ml,
            analysed_at=job.finished_at,
        )
    followups = _followups(session, [load.job_id for load in latest.values()])
    loads = [
        load.model_copy(update=followups[load.job_id]) if load.job_id in followups else load
        for load in latest.values()
    ]
    return sorted(loads, key=lambda s: (s.study_date or dt.date.min, s.study_uid))


def _followups(session: Session, job_ids: list[str]) -> dict[str, dict[str, object]]:
    """Per current job: the follow-up fields of its newest succeeded comparison."""
    if not job_ids:
        return {}
    prior = aliased(Study)
    rows = session.execute(
        select(Comparison, prior)
        .join(prior, Comparison.prior_study_id == prior.id)
        .where(
            Comparison.current_job_id.in_(job_ids),
            Comparison.state == ComparisonState.SUCCEEDED,
        )
        .order_by(Comparison.finished_at)
    ).all()
    found: dict[str, dict[str, object]] = {}
    for comparison, prior_study in rows:  # later comparisons replace earlier ones
        counts = comparison.counts or {}
        found[comparison.current_job_id] = {
            "new_count": int(counts.get(ChangeCategory.NEW.value, 0)),
            "enlarging_count": int(counts.get(ChangeCategory.ENLARGING.value, 0)),
            "activity": comparison.activity,
            "comparison": ComparisonRef(
                id=comparison.id,
                prior_study_uid=prior_study.study_uid,
                prior_study_date=prior_study.study_date,
            ),
        }
    return found
