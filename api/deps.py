"""Dependencies shared by the routes: settings, database, dispatcher, and who is calling.

Authentication: an API key sent as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``,
looked up by its SHA-256 (services/store/repositories/keys.authenticate). Authorisation: each
route names the roles it admits; admin is admitted everywhere. Denials are audited, and so is
every authorised request, reads of patient data included (see api/auditing.py, which writes
the event once the response status is known).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from mslesion.api.auditing import AuditMark, mark_for_audit
from mslesion.services.config import Settings
from mslesion.services.jobs import Dispatcher
from mslesion.services.store.database import Database
from mslesion.services.store.enums import Role
from mslesion.services.store.repositories import keys

_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")

UNAUTHENTICATED = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: an API key's name and role."""

    name: str
    role: Role


def get_settings(request: Request) -> Settings:
    """The gateway's settings (set by api.main.create_app)."""
    settings: Settings = request.app.state.settings
    return settings


def get_db(request: Request) -> Database:
    """The gateway's database handle."""
    db: Database = request.app.state.db
    return db


def get_dispatcher(request: Request) -> Dispatcher:
    """The queue jobs are handed to."""
    dispatcher: Dispatcher = request.app.state.dispatcher
    return dispatcher


def _session(db: Annotated[Database, Depends(get_db)]) -> Iterator[Session]:
    with db.session() as session:
        yield session


# scope="function": the transaction ends when the route returns, before the response is sent.
SessionDep = Annotated[Session, Depends(_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
DbDep = Annotated[Database, Depends(get_db)]
DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]


class Authorize:
    """Dependency admitting callers whose key has one of ``roles`` (admin always).

    Every request reaching it is audited whatever its outcome: under ``audit`` when given,
    else under the route's method and path template; a denial under ``denied: <action>``.
    """

    def __init__(self, *roles: Role, audit: str | None = None, action: str = "access") -> None:
        self.roles = frozenset((*roles, Role.ADMIN))
        self.audit = audit
        self.action = audit or action

    def __call__(
        self,
        request: Request,
        db: DbDep,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
        api_key: Annotated[str | None, Security(_api_key)],
    ) -> Principal:
        """The caller behind the presented API key; 401 if unknown, 403 if its role may not."""
        presented = api_key or (bearer.credentials if bearer else None)
        if not presented:
            self._deny(request, "anonymous", None, 401, "missing API key")
        assert presented is not None
        with db.session() as session:
            row = keys.authenticate(session, presented)
            principal = Principal(row.name, row.role) if row else None
        if principal is None:
            self._deny(request, "unknown key", None, 401, "invalid or revoked API key")
        assert principal is not None
        if principal.role not in self.roles:
            allowed = ", ".join(sorted(r.value for r in self.roles))
            self._deny(
                request,
                principal.name,
                principal.role,
                403,
                f"role {principal.role.value!r} may not do this (allowed: {allowed})",
            )
        # Every authorised request is audited, named by the route's action or, for routes
        # that name none, by method and path template: no route can read patient data unseen.
        action = self.audit or _route_action(request)
        mark_for_audit(request, AuditMark(principal.name, principal.role.value, action))
        return principal

    def _deny(
        self, request: Request, actor: str, role: Role | None, status: int, detail: str
    ) -> None:
        mark_for_audit(
            request, AuditMark(actor, role.value if role else None, f"denied: {self.action}")
        )
        headers = UNAUTHENTICATED if status == 401 else None
        raise HTTPException(status_code=status, detail=detail, headers=headers)


def _route_action(request: Request) -> str:
    """``GET /api/v1/jobs``: the method and the matched route's path template (no values)."""
    route = request.scope.get("route")
    template = getattr(route, "path_format", None) or "(unrouted)"
    return f"{request.method} {template}"
