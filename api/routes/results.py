"""Downloads of a succeeded job's result files (SEG, SR, JSON report, PNG montage).

File paths come only from the job's database rows, resolved under settings.results_dir;
nothing the client sends becomes part of a path.
"""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path
from fastapi.responses import FileResponse

from mslesion.api.deps import Authorize, Principal, SessionDep, SettingsDep
from mslesion.api.routes.jobs import MEDIA_TYPES, JobId
from mslesion.api.schemas import errors
from mslesion.services.store.enums import JobState, ResultKind, Role
from mslesion.services.store.repositories import jobs, results

router = APIRouter(prefix="/api/v1/jobs", tags=["results"])

Kind = Literal["seg", "sr", "json", "png"]
SUFFIXES = {ResultKind.SEG: ".dcm", ResultKind.SR: ".dcm", ResultKind.JSON: ".json"}


@router.get(
    "/{job_id}/results/{kind}",
    response_class=FileResponse,
    responses={
        **errors(404, 422),
        200: {
            "description": "The file",
            "content": {mt: {} for mt in sorted(set(MEDIA_TYPES.values()))},
        },
    },
)
def download(
    job_id: JobId,
    kind: Annotated[Kind, Path(description="seg, sr, json or png")],
    session: SessionDep,
    settings: SettingsDep,
    _: Annotated[Principal, Depends(Authorize(Role.READER, audit="read result"))],
) -> FileResponse:
    """One result file of a succeeded job."""
    result_kind = ResultKind(kind)
    row = results.result_file(session, job_id, result_kind)
    if row is None:
        job = jobs.get_job(session, job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id}")
        if job.state != JobState.SUCCEEDED:
            raise HTTPException(404, f"job {job_id} has not succeeded (state: {job.state.value})")
        raise HTTPException(404, f"job {job_id} has no {kind} result")
    path = resolve_stored(settings.results_dir, row.path)
    if path is None:
        raise HTTPException(404, f"the {kind} file of job {job_id} is missing from the store")
    return FileResponse(
        path,
        media_type=MEDIA_TYPES[result_kind],
        filename=f"{job_id}_{kind}{SUFFIXES.get(result_kind, '.png')}",
    )


def resolve_stored(root: FsPath, relative: str) -> FsPath | None:
    """The stored file under ``root``; None if missing or (defensively) outside the root."""
    base = root.resolve()
    path = (base / relative).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        return None
    return path
