"""Liveness and readiness probes (no authentication: they reveal no patient data)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from mslesion.api.deps import DbDep, DispatcherDep, SettingsDep
from mslesion.api.schemas import CheckOut, LiveOut, ReadyOut
from mslesion.services.config import Settings
from mslesion.services.errors import ModelError
from mslesion.services.jobs import Dispatcher
from mslesion.services.segmentation.manifest import catalogue_folders, load_manifest
from mslesion.services.store.database import Database

router = APIRouter(prefix="/health", tags=["health"])

_verified: set[str] = set()  # model folders whose manifest verified (hashing is done once)
_verify_lock = threading.Lock()


@router.get("/live", response_model=LiveOut)
def live() -> LiveOut:
    """The process is up and serving requests."""
    return LiveOut()


@router.get(
    "/ready",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "A dependency is down"}},
)
async def ready(settings: SettingsDep, db: DbDep, dispatcher: DispatcherDep) -> JSONResponse:
    """Database reachable, broker reachable, shipped model present and matching its manifest."""
    checks = await run_in_threadpool(_run_checks, settings, db, dispatcher)
    ok = all(check.ok for check in checks.values())
    body = ReadyOut(status="ready" if ok else "not ready", checks=checks)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ok else 503)


def _run_checks(settings: Settings, db: Database, dispatcher: Dispatcher) -> dict[str, CheckOut]:
    return {
        "database": _check(db.ping),
        "broker": _check(dispatcher.ping),
        "model": _check(lambda: _verify_model(settings)),
    }


def _check(probe: Callable[[], object]) -> CheckOut:
    try:
        probe()
    except ModelError as exc:
        return CheckOut(ok=False, detail=str(exc))
    except Exception as exc:  # any failure of a dependency makes the node not ready
        # The exception text may carry a connection URL; the type name says enough.
        return CheckOut(ok=False, detail=f"unreachable ({type(exc).__name__})")
    return CheckOut(ok=True)


def _verify_model(settings: Settings) -> None:
    key = str(settings.model_dir.resolve())
    with _verify_lock:
        if key in _verified:
            return
        for folder in catalogue_folders(settings.model_dir):
            load_manifest(folder, verify=True)
        _verified.add(key)
