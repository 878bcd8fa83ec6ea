"""QIDO-RS and WADO-RS (PS3.18 10.4, 10.6) over the result series this node made.

The series: each job's SEG and SR, and each succeeded follow-up comparison's SEG, SR and
secondary captures.

Enough of both for a viewer or dicomweb-client to find a study's SEG and load it: series and
instance searches answer DICOM JSON; retrieval answers ``multipart/related;
type="application/dicom"`` with the stored files, and ``/metadata`` their headers as DICOM
JSON. Matching keys may be given by keyword (``Modality``) or by tag (``00080060``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from itertools import groupby
from pathlib import Path as FsPath
from typing import Annotated, Any

import pydicom
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydicom.filereader import read_file_meta_info
from sqlalchemy.orm import Session

from mslesion.api.deps import Authorize, Principal, SessionDep, SettingsDep
from mslesion.api.dicomjson import instance_result, metadata, series_result
from mslesion.api.multipart import parse_content_type
from mslesion.api.routes.results import resolve_stored
from mslesion.api.schemas import (
    CS_PATTERN,
    DATASETS_SCHEMA,
    DICOM_JSON,
    UID_PATTERN,
    dicom_json_response,
    errors,
)
from mslesion.services.store.enums import Role
from mslesion.services.store.repositories import results
from mslesion.services.store.tables import ResultFile

router = APIRouter(prefix="/dicom-web", tags=["dicomweb"])

Uid = Annotated[str, Path(pattern=UID_PATTERN, max_length=64)]
UidQuery = Annotated[str | None, Query(pattern=UID_PATTERN, max_length=64)]
Searcher = Annotated[Principal, Depends(Authorize(Role.READER, audit="QIDO-RS search"))]
Retriever = Annotated[Principal, Depends(Authorize(Role.READER, audit="WADO-RS retrieve"))]
ModalityQuery = Annotated[str | None, Query(max_length=16, pattern=CS_PATTERN)]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=10**9)]

_TAGS = {
    "00080060": "Modality",
    "0020000D": "StudyInstanceUID",
    "0020000E": "SeriesInstanceUID",
    "00080018": "SOPInstanceUID",
}
_MAX_SCAN = 10_000  # result instances considered by one search (two per job, more per comparison)
_SEARCH_OK = dicom_json_response(DATASETS_SCHEMA, "Matches (an empty array when none)")
_MULTIPART = {
    "description": "The instances",
    "content": {'multipart/related; type="application/dicom"': {}},
}


# --- QIDO-RS ---------------------------------------------------------------------------------


@router.get("/series", responses={200: _SEARCH_OK, **errors(422)}, response_class=JSONResponse)
def search_series(
    request: Request,
    session: SessionDep,
    _: Searcher,
    Modality: ModalityQuery = None,
    StudyInstanceUID: UidQuery = None,
    SeriesInstanceUID: UidQuery = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> JSONResponse:
    """Result series matching the keys."""
    keys = _keys(
        request,
        Modality=Modality,
        StudyInstanceUID=StudyInstanceUID,
        SeriesInstanceUID=SeriesInstanceUID,
    )
    return _series_answer(session, request, keys, limit, offset)


@router.get(
    "/studies/{study}/series",
    responses={200: _SEARCH_OK, **errors(422)},
    response_class=JSONResponse,
)
def search_study_series(
    study: Uid,
    request: Request,
    session: SessionDep,
    _: Searcher,
    Modality: ModalityQuery = None,
    SeriesInstanceUID: UidQuery = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> JSONResponse:
    """Result series of one study."""
    keys = _keys(request, Modality=Modality, SeriesInstanceUID=SeriesInstanceUID)
    keys["StudyInstanceUID"] = study
    return _series_answer(session, request, keys, limit, offset)


@router.get("/instances", responses={200: _SEARCH_OK, **errors(422)}, response_class=JSONResponse)
def search_instances(
    request: Request,
    session: SessionDep,
    _: Searcher,
    Modality: ModalityQuery = None,
    StudyInstanceUID: UidQuery = None,
    SeriesInstanceUID: UidQuery = None,
    SOPInstanceUID: UidQuery = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> JSONResponse:
    """Result instances matching the keys."""
    keys = _keys(
        request,
        Modality=Modality,
        StudyInstanceUID=StudyInstanceUID,
        SeriesInstanceUID=SeriesInstanceUID,
        SOPInstanceUID=SOPInstanceUID,
    )
    return _instances_answer(session, request, keys, limit, offset)


@router.get(
    "/studies/{study}/series/{series}/instances",
    responses={200: _SEARCH_OK, **errors(422)},
    response_class=JSONResponse,
)
def search_series_instances(
    study: Uid,
    series: Uid,
    request: Request,
    session: SessionDep,
    _: Searcher,
    SOPInstanceUID: UidQuery = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> JSONResponse:
    """Result instances of one series."""
    keys = _keys(request, SOPInstanceUID=SOPInstanceUID)
    keys.update(StudyInstanceUID=study, SeriesInstanceUID=series)
    return _instances_answer(session, request, keys, limit, offset)


def _keys(request: Request, **given: str | None) -> dict[str, str]:
    """Matching keys given by keyword, plus those given by tag (keyword wins)."""
    keys = {k: v for k, v in given.items() if v}
    for tag, keyword in _TAGS.items():
        value = request.query_params.get(tag)
        if value and keyword in given and keyword not in keys:
            keys[keyword] = value
    return keys


def _rows(session: Session, keys: dict[str, str], limit: int, offset: int) -> list[ResultFile]:
    return results.dicom_results(
        session,
        study_uid=keys.get("StudyInstanceUID"),
        series_uid=keys.get("SeriesInstanceUID"),
        sop_uid=keys.get("SOPInstanceUID"),
        modality=keys.get("Modality"),
        limit=limit,
        offset=offset,
    )


def _base(request: Request) -> str:
    return f"{str(request.base_url).rstrip('/')}/dicom-web"


def _series_answer(
    session: Session, request: Request, keys: dict[str, str], limit: int, offset: int
) -> JSONResponse:
    rows = sorted(_rows(session, keys, _MAX_SCAN, 0), key=lambda r: (r.series_uid or "", r.id))
    groups = [list(g) for _, g in groupby(rows, key=lambda r: r.series_uid)]
    page = groups[offset : offset + limit]
    base = _base(request)
    return JSONResponse([series_result(g, base) for g in page], media_type=DICOM_JSON)


def _instances_answer(
    session: Session, request: Request, keys: dict[str, str], limit: int, offset: int
) -> JSONResponse:
    base = _base(request)
    body = [instance_result(r, base) for r in _rows(session, keys, limit, offset)]
    return JSONResponse(body, media_type=DICOM_JSON)


# --- WADO-RS ---------------------------------------------------------------------------------


@router.get("/studies/{study}", responses={200: _MULTIPART, **errors(404, 406, 422)})
def retrieve_study(
    study: Uid, request: Request, session: SessionDep, settings: SettingsDep, _: Retriever
) -> StreamingResponse:
    """Every result instance of a study."""
    return _multipart(request, _files(session, settings.results_dir, study, None, None))


@router.get(
    "/studies/{study}/series/{series}", responses={200: _MULTIPART, **errors(404, 406, 422)}
)
def retrieve_series(
    study: Uid,
    series: Uid,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _: Retriever,
) -> StreamingResponse:
    """Every instance of a result series."""
    return _multipart(request, _files(session, settings.results_dir, study, series, None))


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}",
    responses={200: _MULTIPART, **errors(404, 406, 422)},
)
def retrieve_instance(
    study: Uid,
    series: Uid,
    sop: Uid,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _: Retriever,
) -> StreamingResponse:
    """One result instance."""
    return _multipart(request, _files(session, settings.results_dir, study, series, sop))


@router.get(
    "/studies/{study}/series/{series}/metadata",
    responses={200: dicom_json_response(DATASETS_SCHEMA, "Headers"), **errors(404, 422)},
    response_class=JSONResponse,
)
def series_metadata(
    study: Uid,
    series: Uid,
    session: SessionDep,
    settings: SettingsDep,
    _: Retriever,
) -> JSONResponse:
    """The headers (no pixel data) of every instance of a result series, as DICOM JSON."""
    return _metadata(_files(session, settings.results_dir, study, series, None))


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/metadata",
    responses={200: dicom_json_response(DATASETS_SCHEMA, "Header"), **errors(404, 422)},
    response_class=JSONResponse,
)
def instance_metadata(
    study: Uid,
    series: Uid,
    sop: Uid,
    session: SessionDep,
    settings: SettingsDep,
    _: Retriever,
) -> JSONResponse:
    """The header (no pixel data) of one result instance, as DICOM JSON."""
    return _metadata(_files(session, settings.results_dir, study, series, sop))


def _files(
    session: Session, root: FsPath, study: str, series: str | None, sop: str | None
) -> list[FsPath]:
    rows = results.dicom_results(
        session, study_uid=study, series_uid=series, sop_uid=sop, limit=_MAX_SCAN
    )
    paths = [p for p in (resolve_stored(root, r.path) for r in rows) if p is not None]
    if not paths:
        what = "instance" if sop else "series" if series else "study"
        raise HTTPException(404, f"no result {what} with these UIDs on this node")
    return paths


def _metadata(paths: list[FsPath]) -> JSONResponse:
    body: list[dict[str, Any]] = [
        metadata(pydicom.dcmread(p, stop_before_pixels=True)) for p in paths
    ]
    return JSONResponse(body, media_type=DICOM_JSON)


def _multipart(request: Request, paths: list[FsPath]) -> StreamingResponse:
    syntaxes = [str(read_file_meta_info(p).TransferSyntaxUID) for p in paths]
    _check_acceptable(request.headers.get("accept"), set(syntaxes))
    boundary = uuid.uuid4().hex
    return StreamingResponse(
        _parts(paths, syntaxes, boundary),
        media_type=f'multipart/related; type="application/dicom"; boundary={boundary}',
    )


def _parts(paths: list[FsPath], syntaxes: list[str], boundary: str) -> Iterator[bytes]:
    for path, syntax in zip(paths, syntaxes, strict=True):
        yield (
            f"--{boundary}\r\nContent-Type: application/dicom; transfer-syntax={syntax}\r\n\r\n"
        ).encode()
        yield path.read_bytes()
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def _check_acceptable(accept: str | None, syntaxes: set[str]) -> None:
    """406 unless the Accept header admits the stored files as they are."""
    if not accept:
        return
    for media_range in accept.split(","):
        media = parse_content_type(media_range)
        if media.media_type in ("*/*", "multipart/*", "application/dicom"):
            return
        if media.media_type == "multipart/related":
            if media.params.get("type", "application/dicom").lower() not in (
                "application/dicom",
                "*/*",
            ):
                continue
            wanted = media.params.get("transfer-syntax", "*")
            if wanted == "*" or syntaxes <= {wanted}:
                return
    raise HTTPException(
        406,
        'the result instances are served as multipart/related; type="application/dicom" '
        f"in their stored transfer syntax ({', '.join(sorted(syntaxes))})",
    )
