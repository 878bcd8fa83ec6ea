"""``POST /api/v1/uploads``: a zip of a DICOM study, for scripts.

The body is streamed to a temporary file under the data folder (size limit enforced while
reading), the archive passes the node's zip guard (:mod:`services.dicom.zipguard`, with the
zip limits of the settings: 413 for a possible zip bomb, 400 for path traversal or encrypted
members; members are never extracted by name, but such an archive is not what a scanner or
PACS export makes), every member is read in memory and stored like a STOW-RS part, and each
study that received new instances gets a job.
"""

from __future__ import annotations

import tempfile
import zipfile
from typing import IO, Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from mslesion.api.deps import Authorize, DbDep, DispatcherDep, Principal, SettingsDep
from mslesion.api.ingesting import Outcome, complete_studies, ingest_bytes
from mslesion.api.multipart import parse_content_type
from mslesion.api.schemas import CreatedJob, FileFailure, UploadOut, errors
from mslesion.services.config import Settings
from mslesion.services.dicom.zipguard import ZipLimits, ZipRefusedError, check_archive
from mslesion.services.ingest import DicomStatus
from mslesion.services.store.database import Database
from mslesion.services.store.enums import Role, Source

router = APIRouter(prefix="/api/v1/uploads", tags=["uploads"])

ZIP_TYPES = ("application/zip", "application/x-zip-compressed", "application/octet-stream")
DAMAGED = "unreadable member"


@router.post(
    "",
    status_code=202,
    response_model=UploadOut,
    responses=errors(400, 413, 415, 422, 507),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in ZIP_TYPES},
        }
    },
)
async def upload_zip(
    request: Request,
    settings: SettingsDep,
    db: DbDep,
    dispatcher: DispatcherDep,
    principal: Annotated[Principal, Depends(Authorize(Role.UPLOADER, audit="store (zip upload)"))],
) -> JSONResponse:
    """Store every DICOM instance in the zip; 202 with the jobs created and per-file failures."""
    media = parse_content_type(request.headers.get("content-type", "")).media_type
    if media not in ZIP_TYPES:
        raise HTTPException(415, f"send the zip as application/zip, not {media or 'nothing'!r}")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.max_upload_bytes:
        raise _too_large(settings.max_upload_bytes)
    incoming = settings.data_dir / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=incoming) as spooled:
        await _receive(request, spooled, settings.max_upload_bytes)
        names, outcomes = await run_in_threadpool(_ingest_zip, db, settings, spooled)
    jobs = await run_in_threadpool(complete_studies, db, dispatcher, outcomes, principal.name)
    return _answer(names, outcomes, jobs)


async def _receive(request: Request, sink: IO[bytes], limit: int) -> None:
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise _too_large(limit)
        await run_in_threadpool(sink.write, chunk)
    if not received:
        raise HTTPException(400, "the request body is empty; send a zip archive")
    sink.seek(0)


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"the upload exceeds the limit of {limit} bytes")


def _ingest_zip(
    db: Database, settings: Settings, spooled: IO[bytes]
) -> tuple[list[str], list[Outcome]]:
    limits = ZipLimits.from_settings(settings)
    try:
        archive = zipfile.ZipFile(spooled)
    except zipfile.BadZipFile as exc:
        raise HTTPException(400, f"the body is not a readable zip archive ({exc})") from exc
    with archive:
        _check_archive(archive, limits)
        members = [info for info in archive.infolist() if not info.is_dir()]
        names, outcomes = [], []
        for info in members:
            names.append(info.filename)
            outcomes.append(_ingest_member(db, settings, archive, info, limits))
    return names, outcomes


def _check_archive(archive: zipfile.ZipFile, limits: ZipLimits) -> None:
    """The zip guard's refusal as an HTTP error: 413 for a possible zip bomb, else 400."""
    try:
        check_archive(archive.infolist(), limits)
    except ZipRefusedError as exc:
        raise HTTPException(413 if exc.oversized else 400, exc.problem) from exc


def _ingest_member(
    db: Database,
    settings: Settings,
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    limits: ZipLimits,
) -> Outcome:
    try:
        with archive.open(info) as member:
            # Read one byte past the limit: a member whose header lies about its size is caught.
            data = member.read(limits.max_member_bytes + 1)
    except (zipfile.BadZipFile, OSError, NotImplementedError) as exc:
        return _not_understood(f"{DAMAGED} ({exc})")
    if len(data) > limits.max_member_bytes:
        return _not_understood(f"{DAMAGED} (it expands beyond what its header declares)")
    return ingest_bytes(db, settings.spool_dir, data, Source.UPLOAD)


def _not_understood(reason: str) -> Outcome:
    return Outcome(None, None, None, None, int(DicomStatus.CANNOT_UNDERSTAND), reason)


def _answer(names: list[str], outcomes: list[Outcome], jobs: dict[str, str]) -> JSONResponse:
    stored = sum(o.ok and o.new for o in outcomes)
    duplicates = sum(o.ok and not o.new for o in outcomes)
    failures = [
        FileFailure(file=name, status=o.status, reason=o.reason)
        for name, o in zip(names, outcomes, strict=True)
        if not o.ok
    ]
    if not stored and not duplicates:
        statuses = {o.status for o in outcomes}
        if DicomStatus.OUT_OF_RESOURCES_DB in statuses:
            raise HTTPException(
                503, "the node's database is unavailable; retry later", {"Retry-After": "30"}
            )
        if DicomStatus.OUT_OF_RESOURCES in statuses:
            raise HTTPException(507, "the node's storage is full; no instance was stored")
        damaged = [f for f in failures if f.reason.startswith(DAMAGED)]
        if damaged:
            # The archive itself is corrupt (bad CRC, sizes that lie): a malformed request.
            raise HTTPException(
                400,
                f"the zip archive is damaged: member {damaged[0].file!r}: {damaged[0].reason}",
            )
        detail = {
            "message": "no DICOM instance in the archive could be stored",
            "failures": [f.model_dump() for f in failures],
        }
        raise HTTPException(422, detail)
    body = UploadOut(
        stored=stored,
        duplicates=duplicates,
        jobs=[CreatedJob(job_id=j, study_uid=s) for s, j in jobs.items()],
        failures=failures,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=202)
