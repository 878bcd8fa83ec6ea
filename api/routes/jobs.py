"""Jobs: list, detail (state, stage, timings, series, lesions, forwards), re-send of results."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from mslesion.api.deps import Authorize, DbDep, DispatcherDep, Principal, SessionDep
from mslesion.api.schemas import (
    UUID_PATTERN,
    ForwardOut,
    JobDetail,
    JobPage,
    JobSummary,
    LesionSummary,
    ResendOut,
    ResultLink,
    errors,
)
from mslesion.services import jobs as job_service
from mslesion.services.store.database import Database
from mslesion.services.store.enums import RESULT_MEDIA_TYPES, JobState, ResultKind, Role
from mslesion.services.store.repositories import jobs
from mslesion.services.store.tables import Job

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])

JobId = Annotated[str, Path(pattern=UUID_PATTERN, description="job id (UUID)")]
DOWNLOADABLE = (ResultKind.SEG, ResultKind.SR, ResultKind.JSON, ResultKind.PNG)
MEDIA_TYPES = RESULT_MEDIA_TYPES


@router.get("", response_model=JobPage, responses=errors(422))
def list_jobs(
    session: SessionDep,
    _: Annotated[Principal, Depends(Authorize(Role.UPLOADER, Role.READER))],
    state: Annotated[JobState | None, Query(description="only jobs in this state")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> JobPage:
    """Jobs, newest first."""
    rows, total = jobs.list_jobs(session, state=state, limit=limit, offset=offset)
    return JobPage(items=[_summary(j) for j in rows], total=total, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobDetail, responses=errors(404, 422))
def get_job(
    job_id: JobId,
    request: Request,
    session: SessionDep,
    _: Annotated[Principal, Depends(Authorize(Role.UPLOADER, Role.READER, audit="read job"))],
) -> JobDetail:
    """State, stage, progress, attempts, timings, series chosen, error, lesions, forwards."""
    job = jobs.get_job(session, job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id}")
    return _detail(job, str(request.base_url))


@router.post(
    "/{job_id}/forward", response_model=ResendOut, status_code=202, responses=errors(404, 409, 422)
)
async def resend(
    job_id: JobId,
    db: DbDep,
    dispatcher: DispatcherDep,
    _: Annotated[Principal, Depends(Authorize(audit="re-send results"))],
) -> ResendOut:
    """Re-send a job's results to the destinations whose forwarding failed (admin)."""
    if not await run_in_threadpool(_job_exists, db, job_id):
        raise HTTPException(404, f"no job {job_id}")
    count = await run_in_threadpool(job_service.resend, db, dispatcher, job_id)
    if not count:
        raise HTTPException(409, f"job {job_id} has no failed forward to re-send")
    return ResendOut(job_id=job_id, resent=count)


def _job_exists(db: Database, job_id: str) -> bool:
    with db.session() as session:
        return jobs.get_job(session, job_id) is not None


def _summary(job: Job) -> JobSummary:
    return JobSummary(
        id=job.id,
        state=job.state,
        stage=job.stage,
        progress=job.progress,
        attempts=job.attempts,
        study_uid=job.study.study_uid,
        created_at=job.created_at,
        finished_at=job.finished_at,
        created_by=job.created_by,
    )


def _detail(job: Job, base_url: str) -> JobDetail:
    succeeded = job.state == JobState.SUCCEEDED
    kinds = {r.kind for r in job.results} if succeeded else set()
    return JobDetail(
        **_summary(job).model_dump(),
        enqueued_at=job.enqueued_at,
        started_at=job.started_at,
        timings_s={k: float(v) for k, v in (job.timings_s or {}).items()},
        series=list(job.series or []),
        error=job.error,
        provider=job.provider,
        model=job.model,
        worker=job.worker,
        lesions=LesionSummary(
            lesion_count=job.lesion_count or 0,
            lesion_volume_ml=job.lesion_volume_ml or 0.0,
            brain_volume_ml=job.brain_volume_ml,
        )
        if succeeded
        else None,
        results=[
            ResultLink(
                kind=kind,
                media_type=MEDIA_TYPES[kind],
                url=f"{base_url}api/v1/jobs/{job.id}/results/{kind.value}",
            )
            for kind in DOWNLOADABLE
            if kind in kinds
        ],
        forwards=[
            ForwardOut(
                destination=f.destination,
                state=f.state,
                attempts=f.attempts,
                last_error=f.last_error,
                updated_at=f.updated_at,
            )
            for f in sorted(job.forwards, key=lambda f: f.id)
        ],
    )
