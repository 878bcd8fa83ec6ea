"""The HTTP gateway: ``create_app(settings, db, dispatcher)`` builds the FastAPI app.

It wires routes, errors, audit, the rate limit and CORS. No static files are mounted: every
file leaves through a route that authorises and audits the request (docs/SECURITY.md).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from mslesion.api.auditing import AuditMiddleware
from mslesion.api.ratelimit import RateLimitMiddleware
from mslesion.api.routes import (
    audit,
    comparisons,
    dicomweb,
    health,
    jobs,
    patients,
    results,
    stow,
    uploads,
)
from mslesion.api.schemas import ErrorOut
from mslesion.services.config import Settings
from mslesion.services.errors import MSLesionError
from mslesion.services.jobs import Dispatcher
from mslesion.services.logpolicy import redact_path
from mslesion.services.store.database import Database

log = logging.getLogger(__name__)

RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {"model": ErrorOut, "description": "Too many requests; see the Retry-After header"}
}

DESCRIPTION = (
    "MS lesion segmentation node: DICOMweb STOW-RS upload, zip upload, jobs, result "
    "downloads, QIDO-RS/WADO-RS of the result SEG and SR (and of the follow-up SEG, SR and "
    "secondary captures), per-patient lesion-load history, tracked lesions and follow-up "
    "comparisons. "
    "Authenticate with an API key: `Authorization: Bearer <key>` or `X-API-Key: <key>`."
)


def create_app(settings: Settings, db: Database, dispatcher: Dispatcher) -> FastAPI:
    """The gateway application for one node."""
    app = FastAPI(title="mslesion gateway", version="1", description=DESCRIPTION)
    app.state.settings = settings
    app.state.db = db
    app.state.dispatcher = dispatcher
    modules = (health, stow, uploads, jobs, results, dicomweb, patients, comparisons, audit)
    for module in modules:
        # Every route but the health probes may answer 429 (api/ratelimit.py).
        limited = settings.rate_limit_per_minute and module is not health
        app.include_router(module.router, responses=RATE_LIMITED if limited else None)
    app.add_exception_handler(MSLesionError, _domain_error)
    app.add_exception_handler(SQLAlchemyError, _database_unavailable)
    app.add_exception_handler(Exception, _internal_error)
    # Starlette runs the last added middleware first: CORS, then the rate limit, then audit.
    app.add_middleware(AuditMiddleware, db=db)
    if settings.rate_limit_per_minute:
        app.add_middleware(RateLimitMiddleware, per_minute=settings.rate_limit_per_minute)
    # CORS stays closed (no Access-Control-Allow-* header at all) unless origins are listed.
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "Accept"],
            expose_headers=[stow.JOBS_HEADER],
        )
    return app


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    """A domain error a route did not answer itself: the status its class declares.

    The caller's own mistakes (4xx) are explained to the caller; the node's faults (5xx) are
    logged, and the caller is not shown the node's paths or configuration.
    """
    assert isinstance(exc, MSLesionError)
    if exc.http_status < 500:
        return JSONResponse({"detail": str(exc)}, status_code=exc.http_status)
    log.error("%s on %s: %s", type(exc).__name__, redact_path(request.url.path), exc)
    detail = f"the node could not serve this request ({type(exc).__name__}); see its log"
    return JSONResponse({"detail": detail}, status_code=exc.http_status)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.error("database error on %s: %s", redact_path(request.url.path), type(exc).__name__)
    return JSONResponse(
        {"detail": "the node's database is unavailable; retry later"},
        status_code=503,
        headers={"Retry-After": "30"},
    )


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s", redact_path(request.url.path))
    return JSONResponse({"detail": "internal error; see the gateway log"}, status_code=500)
