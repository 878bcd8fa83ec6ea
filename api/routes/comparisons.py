"""Follow-up comparisons: detail, downloads of their files, explicit re-analysis.

The detail gives the state, counts per change category, activity, registration and result
files; ``POST`` requests an explicit comparison (re-analysis) of two analysed studies.

File paths come only from the comparison's database rows, resolved under
settings.results_dir; nothing the client sends becomes part of a path.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from mslesion.api.deps import (
    Authorize,
    DbDep,
    DispatcherDep,
    Principal,
    SessionDep,
    SettingsDep,
)
from mslesion.api.routes.results import resolve_stored
from mslesion.api.schemas import (
    COMPARISON_FILE_PATTERN,
    UUID_PATTERN,
    ComparisonCreated,
    ComparisonDetail,
    ComparisonFileLink,
    ComparisonRequest,
    ForwardOut,
    errors,
)
from mslesion.services import jobs as job_service
from mslesion.services.followup.model import ChangeCategory, RegistrationSummary
from mslesion.services.store.enums import (
    RESULT_MEDIA_TYPES,
    ComparisonState,
    ResultKind,
    Role,
)
from mslesion.services.store.repositories import comparisons, results
from mslesion.services.store.tables import Comparison, ResultFile

router = APIRouter(prefix="/api/v1/comparisons", tags=["comparisons"])

ComparisonId = Annotated[str, Path(pattern=UUID_PATTERN, description="comparison id (UUID)")]
FileName = Annotated[
    str,
    Path(
        pattern=COMPARISON_FILE_PATTERN,
        description="seg, sr, json, png, or sc_<n> (the n-th secondary capture)",
    ),
]
KINDS = {
    "seg": ResultKind.FOLLOWUP_SEG,
    "sr": ResultKind.FOLLOWUP_SR,
    "json": ResultKind.FOLLOWUP_JSON,
    "png": ResultKind.FOLLOWUP_PNG,
}
SUFFIXES = {"application/dicom": ".dcm", "application/json": ".json", "image/png": ".png"}


@router.post(
    "",
    response_model=ComparisonCreated,
    status_code=202,
    responses=errors(400, 404, 409, 422),  # 400: a body that is not JSON
)
async def request_comparison(
    body: ComparisonRequest,
    request: Request,
    db: DbDep,
    dispatcher: DispatcherDep,
    who: Annotated[Principal, Depends(Authorize(audit="request comparison"))],
) -> ComparisonCreated:
    """Compare two analysed studies of one patient again, explicitly (admin).

    Each study's newest succeeded analysis is used; the comparison is queued as its own unit
    of work. Automatic comparisons already made are kept: this one is added beside them.
    """
    comparison_id = await run_in_threadpool(
        job_service.request_comparison,
        db,
        dispatcher,
        body.prior_study_uid,
        body.current_study_uid,
        who.name,
    )
    return ComparisonCreated(
        comparison_id=comparison_id,
        state=ComparisonState.QUEUED,
        url=f"{request.base_url}api/v1/comparisons/{comparison_id}",
    )


@router.get("/{comparison_id}", response_model=ComparisonDetail, responses=errors(404, 422))
def get_comparison(
    comparison_id: ComparisonId,
    request: Request,
    session: SessionDep,
    _: Annotated[Principal, Depends(Authorize(Role.READER, audit="read comparison"))],
) -> ComparisonDetail:
    """State, counts per change category, activity, registration, error, result files."""
    row = comparisons.get_comparison(session, comparison_id)
    if row is None:
        raise HTTPException(404, f"no comparison {comparison_id}")
    return _detail(row, str(request.base_url))


@router.get(
    "/{comparison_id}/results/{name}",
    response_class=FileResponse,
    responses={
        **errors(404, 422),
        200: {
            "description": "The file",
            "content": {mt: {} for mt in sorted(SUFFIXES)},
        },
    },
)
def download(
    comparison_id: ComparisonId,
    name: FileName,
    session: SessionDep,
    settings: SettingsDep,
    _: Annotated[Principal, Depends(Authorize(Role.READER, audit="read comparison result"))],
) -> FileResponse:
    """One file of a succeeded comparison: follow-up SEG, SR, JSON, PNG or a secondary capture."""
    kind, part = file_kind(name)
    row = results.comparison_file(session, comparison_id, kind, part)
    if row is None:
        found = comparisons.get_comparison(session, comparison_id)
        if found is None:
            raise HTTPException(404, f"no comparison {comparison_id}")
        if found.state != ComparisonState.SUCCEEDED:
            raise HTTPException(
                404,
                f"comparison {comparison_id} has not succeeded (state: {found.state.value})",
            )
        raise HTTPException(404, f"comparison {comparison_id} has no {name} file")
    path = resolve_stored(settings.results_dir, row.path)
    if path is None:
        raise HTTPException(404, f"the {name} file of comparison {comparison_id} is missing")
    return FileResponse(
        path,
        media_type=row.media_type,
        filename=f"{comparison_id}_{name}{SUFFIXES.get(row.media_type, '')}",
    )


def file_kind(name: str) -> tuple[ResultKind, int]:
    """The result kind and part a file name stands for (``sc_2``: secondary capture 2)."""
    if name.startswith("sc_"):
        return ResultKind.FOLLOWUP_SC, int(name[3:])
    return KINDS[name], 0


def file_name(row: ResultFile) -> str:
    """The name a comparison's file is downloaded by (inverse of :func:`file_kind`)."""
    if row.kind is ResultKind.FOLLOWUP_SC:
        return f"sc_{row.part}"
    return next(name for name, kind in KINDS.items() if kind is row.kind)


def _detail(row: Comparison, base_url: str) -> ComparisonDetail:
    succeeded = row.state == ComparisonState.SUCCEEDED
    files = sorted(row.results, key=lambda r: (r.kind.value, r.part)) if succeeded else []
    return ComparisonDetail(
        id=row.id,
        state=row.state,
        trigger=row.trigger,
        prior_study_uid=row.prior_study.study_uid,
        prior_study_date=row.prior_study.study_date,
        current_study_uid=row.current_study.study_uid,
        current_study_date=row.current_study.study_date,
        prior_job_id=row.prior_job_id,
        current_job_id=row.current_job_id,
        attempts=row.attempts,
        counts={ChangeCategory(k): int(v) for k, v in row.counts.items()} if row.counts else None,
        activity=row.activity,
        registration=RegistrationSummary.model_validate(row.registration)
        if row.registration
        else None,
        error=row.error,
        timings_s={k: float(v) for k, v in (row.timings_s or {}).items()},
        created_at=row.created_at,
        enqueued_at=row.enqueued_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        created_by=row.created_by,
        results=[
            ComparisonFileLink(
                name=file_name(f),
                kind=f.kind,
                media_type=RESULT_MEDIA_TYPES[f.kind],
                url=f"{base_url}api/v1/comparisons/{row.id}/results/{file_name(f)}",
            )
            for f in files
        ],
        forwards=[
            ForwardOut(
                destination=f.destination,
                state=f.state,
                attempts=f.attempts,
                last_error=f.last_error,
                updated_at=f.updated_at,
            )
            for f in sorted(row.forwards, key=lambda f: f.id)
        ],
    )
