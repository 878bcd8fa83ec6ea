"""DICOMweb STOW-RS (PS3.18 10.5): ``POST /dicom-web/studies[/{study}]``.

The body, ``multipart/related; type="application/dicom"``, is read as it arrives (chunked or
not), cut into parts by api/multipart.py and each part stored as soon as it is complete,
so memory holds one instance at a time. The size limit is enforced on Content-Length before
reading and on the bytes actually received while reading.

Answer (PS3.18 10.5.3, ``application/dicom+json``): 200 all stored, 202 some failed,
409 none stored; FailedSOPSequence items carry the ingest's DICOM status as FailureReason.
When nothing could be stored because the node's database is down the answer is 503, when
its storage is full 507. After the request each study that received new instances is
complete and gets a job: the job ids are returned in the ``X-Mslesion-Jobs`` response header
(comma-separated), since a PS3.18 response body has no place for them.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from mslesion.api.deps import Authorize, DbDep, DispatcherDep, Principal, SettingsDep
from mslesion.api.dicomjson import stow_response
from mslesion.api.ingesting import Outcome, complete_studies, ingest_bytes
from mslesion.api.multipart import MultipartError, MultipartStreamParser, Part, parse_content_type
from mslesion.api.schemas import DATASET_SCHEMA, DICOM_JSON, UID_PATTERN, errors
from mslesion.services.config import Settings
from mslesion.services.ingest import DicomStatus
from mslesion.services.jobs import Dispatcher
from mslesion.services.store.database import Database
from mslesion.services.store.enums import Role, Source

router = APIRouter(prefix="/dicom-web", tags=["dicomweb"])

JOBS_HEADER = "X-Mslesion-Jobs"
_STOW_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {
        "description": text,
        "content": {DICOM_JSON: {"schema": DATASET_SCHEMA}},
        "headers": {JOBS_HEADER: {"description": "ids of the jobs created", "schema": {}}},
    }
    for code, text in (
        (200, "Every instance stored"),
        (202, "Some instances stored, others failed (FailedSOPSequence)"),
        (409, "No instance stored (FailedSOPSequence)"),
    )
}
Uploader = Annotated[Principal, Depends(Authorize(Role.UPLOADER, audit="store (STOW-RS)"))]


@router.post(
    "/studies",
    responses={**_STOW_RESPONSES, **errors(400, 413, 415, 507)},
    summary="STOW-RS: store instances",
)
async def store_instances(
    request: Request,
    settings: SettingsDep,
    db: DbDep,
    dispatcher: DispatcherDep,
    principal: Uploader,
) -> JSONResponse:
    """Store the instances of a ``multipart/related; type="application/dicom"`` body."""
    return await _stow(request, settings, db, dispatcher, principal, None)


@router.post(
    "/studies/{study}",
    responses={**_STOW_RESPONSES, **errors(400, 413, 415, 422, 507)},
    summary="STOW-RS: store instances of one study",
)
async def store_study_instances(
    study: Annotated[str, Path(pattern=UID_PATTERN, max_length=64)],
    request: Request,
    settings: SettingsDep,
    db: DbDep,
    dispatcher: DispatcherDep,
    principal: Uploader,
) -> JSONResponse:
    """As ``POST /studies``; instances of any other study fail with 0xA900."""
    return await _stow(request, settings, db, dispatcher, principal, study)


async def _stow(
    request: Request,
    settings: Settings,
    db: Database,
    dispatcher: Dispatcher,
    principal: Principal,
    study: str | None,
) -> JSONResponse:
    parser = MultipartStreamParser(_boundary(request))
    _check_declared_length(request, settings.max_upload_bytes)
    outcomes: list[Outcome] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > settings.max_upload_bytes:
            raise _too_large(settings.max_upload_bytes)
        for part in _feed(parser, chunk, outcomes):
            outcomes.append(await _ingest(db, settings, part, study))
    try:
        parser.close()
    except MultipartError as exc:
        raise _malformed(exc, outcomes) from exc
    if not outcomes:
        raise HTTPException(400, "the multipart/related body has no parts")
    jobs = await run_in_threadpool(complete_studies, db, dispatcher, outcomes, principal.name)
    return _answer(outcomes, jobs, f"{str(request.base_url).rstrip('/')}/dicom-web", study)


def _boundary(request: Request) -> str:
    header = request.headers.get("content-type", "")
    media = parse_content_type(header)
    if media.media_type != "multipart/related":
        raise HTTPException(
            415, f'STOW-RS needs multipart/related; type="application/dicom", not {header!r}'
        )
    part_type = media.params.get("type", "application/dicom").strip().lower()
    if part_type != "application/dicom":
        raise HTTPException(
            415,
            f'only type="application/dicom" parts are accepted (got type={part_type!r}); '
            "send Part 10 instances",
        )
    boundary = media.params.get("boundary")
    if not boundary:
        raise HTTPException(400, "the multipart/related Content-Type has no boundary parameter")
    try:
        MultipartStreamParser(boundary)
    except MultipartError as exc:
        raise HTTPException(400, str(exc)) from exc
    return boundary


def _check_declared_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"the request body exceeds the limit of {limit} bytes")


def _feed(parser: MultipartStreamParser, chunk: bytes, outcomes: list[Outcome]) -> list[Part]:
    try:
        return parser.feed(chunk)
    except MultipartError as exc:
        raise _malformed(exc, outcomes) from exc


def _malformed(exc: MultipartError, outcomes: list[Outcome]) -> HTTPException:
    """400 for a broken body, wherever it breaks.

    Parts completed before the break are stored durably (a retry of the whole request is
    idempotent) but get no job here: the study may be incomplete, so it is left to the
    quiet-study monitor.
    """
    if not outcomes:
        return HTTPException(400, f"malformed multipart/related body: {exc}")
    stored = sum(o.ok for o in outcomes)
    return HTTPException(
        400,
        f"malformed multipart/related body after {len(outcomes)} part(s), {stored} of them "
        f"stored: {exc}",
    )


async def _ingest(db: Database, settings: Settings, part: Part, study: str | None) -> Outcome:
    if part.content_type not in (None, "application/dicom"):
        return _failure(
            DicomStatus.CANNOT_UNDERSTAND,
            f"part Content-Type {part.content_type!r} is not application/dicom",
        )
    return await run_in_threadpool(
        ingest_bytes, db, settings.spool_dir, part.content, Source.STOW, expected_study=study
    )


def _failure(status: DicomStatus, reason: str) -> Outcome:
    return Outcome(None, None, None, None, int(status), reason)


def _answer(
    outcomes: list[Outcome], jobs: dict[str, str], base: str, study: str | None
) -> JSONResponse:
    stored = sum(o.ok for o in outcomes)
    headers = {JOBS_HEADER: ",".join(jobs.values())} if jobs else {}
    if not stored:
        statuses = {o.status for o in outcomes}
        if DicomStatus.OUT_OF_RESOURCES_DB in statuses:
            raise HTTPException(
                503, "the node's database is unavailable; retry later", {"Retry-After": "30"}
            )
        if DicomStatus.OUT_OF_RESOURCES in statuses:
            raise HTTPException(507, "the node's storage is full; no instance was stored")
    status = 200 if stored == len(outcomes) else 202 if stored else 409
    body = stow_response(outcomes, base, study)
    return JSONResponse(body, status_code=status, media_type=DICOM_JSON, headers=headers)
