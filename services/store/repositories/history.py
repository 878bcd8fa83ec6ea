"""Per-patient lesion-load history: the latest successful analysis of each study."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from mslesion.services.store.enums import JobState
from mslesion.services.store.tables import Job, Study


class StudyLoad(BaseModel):
    """One analysed study of a patient."""

    study_uid: str
    study_date: dt.date | None
    job_id: str
    lesion_count: int
    lesion_volume_ml: float
    brain_volume_ml: float | None
    analysed_at: dt.datetime | None


def patient_studies(session: Session, patient_id: str) -> list[StudyLoad]:
    """Each analysed study of ``patient_id`` once (its newest successful job), by date."""
    rows = session.execute(
        select(Job, Study)
        .join(Study)
        .where(Study.patient_id == patient_id, Job.state == JobState.SUCCEEDED)
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
    return sorted(latest.values(), key=lambda s: (s.study_date or dt.date.min, s.study_uid))
