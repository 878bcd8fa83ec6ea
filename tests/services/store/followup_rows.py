"""Rows of the follow-up reading for tests: analysed studies, comparisons recorded as a worker
records them (claim, succeed with an outcome, lesions), without running a comparison."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from mslesion.services.followup.model import (
    ACTIVE_CATEGORIES,
    ChangeCategory,
    ChangeThresholds,
    FollowUpReport,
    LesionChange,
    Location,
    RegistrationStatus,
    RegistrationSummary,
)
from mslesion.services.store.database import Database
from mslesion.services.store.enums import ComparisonTrigger, Source
from mslesion.services.store.repositories import comparisons, jobs, lesions, studies
from mslesion.services.store.repositories.comparisons import ComparisonOutcome
from mslesion.services.store.repositories.jobs import JobOutcome, ResultRecord
from mslesion.services.store.repositories.lesions import Identity, PriorLesion, Reading
from mslesion.services.store.tables import Comparison, Job

MR = "1.2.840.10008.5.1.4.1.1.4"


def analysed(
    db: Database,
    patient: str | None,
    uid: str,
    date: dt.date | None,
    *,
    issuer: str | None = None,
    volume: float = 1.0,
    count: int = 1,
) -> tuple[int, str]:
    """A study of one recorded instance with a succeeded job; (study id, job id)."""
    with db.session() as session:
        studies.record_instance(
            session,
            studies.InstanceRecord(
                study_uid=uid,
                series_uid=f"{uid}.1",
                sop_instance_uid=f"{uid}.1.1",
                sop_class_uid=MR,
                patient_id=patient,
                issuer_of_patient_id=issuer,
                study_date=date,
                path=f"{uid}/{uid}.1/{uid}.1.1.dcm",
                size_bytes=1,
            ),
            Source.DIMSE,
            "PACS",
        )
        study = studies.get_study(session, uid)
        assert study is not None
        job_id = jobs.create_job(session, study.id, "PACS").id
        jobs.claim(session, job_id, "w")
        assert jobs.succeed(
            session,
            job_id,
            JobOutcome(
                timings_s={},
                series=[],
                provider="CPUExecutionProvider",
                model="m 1",
                lesion_count=count,
                lesion_volume_ml=volume,
                brain_volume_ml=1200.0,
                results=[],
            ),
        )
        return study.id, job_id


def change(
    uid: str,
    tid: str,
    category: ChangeCategory,
    current: int | None,
    prior: Sequence[int] = (),
    volume: float = 0.5,
    location: Location = Location.PERIVENTRICULAR,
) -> LesionChange:
    """One lesion of a follow-up report."""
    gone = category is ChangeCategory.DISAPPEARED
    return LesionChange(
        tracking_uid=uid,
        tracking_id=tid,
        category=category,
        current_label=None if gone else current,
        prior_labels=list(prior),
        volume_ml=0.0 if gone else volume,
        prior_volume_ml=0.0 if category is ChangeCategory.NEW else volume,
        centroid_mm_lps=(1.0, 2.0, 3.0),
        location=location,
    )


def report(prior_uid: str, current_uid: str, changes: list[LesionChange]) -> FollowUpReport:
    """A follow-up report of ``changes`` (counts and activity derived from them)."""
    counts = {c: sum(1 for x in changes if x.category is c) for c in ChangeCategory}
    return FollowUpReport(
        created=dt.datetime.now(dt.UTC),
        prior_study_instance_uid=prior_uid,
        current_study_instance_uid=current_uid,
        model_name="m",
        model_version="1",
        registration=RegistrationSummary(
            status=RegistrationStatus.REGISTERED, reason="rigid: same scanner", metric=-0.5
        ),
        thresholds=ChangeThresholds(),
        counts=counts,
        new_or_enlarging_by_location={loc: 0 for loc in Location},
        activity=any(counts[c] for c in ACTIVE_CATEGORIES),
        total_volume_ml=sum(x.volume_ml for x in changes),
        prior_total_volume_ml=sum(x.prior_volume_ml for x in changes),
        lesions=changes,
    )


def succeeded_comparison(
    db: Database,
    prior_job_id: str,
    current_job_id: str,
    followup: FollowUpReport,
    prior_ids: dict[int, Identity],
    prior_lesions: dict[int, PriorLesion],
    results: Sequence[ResultRecord] = (),
    trigger: ComparisonTrigger = ComparisonTrigger.AUTO,
    reading: Reading | None = None,
) -> str:
    """A comparison of two jobs, claimed, succeeded and its lesions recorded, as a worker does.

    ``reading``: the re-analysis the comparison read the current study through.
    """
    with db.session() as session:
        prior_job, current_job = session.get(Job, prior_job_id), session.get(Job, current_job_id)
        assert prior_job is not None and current_job is not None
        cid = comparisons.create_comparison(
            session, prior_job, current_job, trigger=trigger, created_by="test"
        ).id
    return finish(db, cid, followup, prior_ids, prior_lesions, results, reading)


def finish(
    db: Database,
    cid: str,
    followup: FollowUpReport,
    prior_ids: dict[int, Identity],
    prior_lesions: dict[int, PriorLesion],
    results: Sequence[ResultRecord] = (),
    reading: Reading | None = None,
) -> str:
    """Claim and succeed a queued comparison with ``followup``; its id."""
    with db.session() as session:
        assert comparisons.claim(session, cid, "w") is not None
        outcome = ComparisonOutcome(
            registration=followup.registration.model_dump(mode="json"),
            counts={c.value: n for c, n in followup.counts.items()},
            activity=followup.activity,
            timings_s={"register": 1.0},
            results=list(results),
        )
        assert comparisons.succeed(session, cid, outcome, worker="w")
        row = session.get(Comparison, cid)
        assert row is not None
        lesions.record_comparison(session, row, followup, prior_ids, prior_lesions, reading)
    return cid
