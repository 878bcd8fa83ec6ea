"""The audit trail of HTTP access: who read or changed what, when, from where, with what outcome.

Routes mark a request for audit (through api.deps.Authorize); this ASGI middleware writes the
event when the response starts, so the outcome is the real HTTP status. The event is
committed before the response is released: if it cannot be written, the caller gets 503
instead of the data (an unaudited read of patient data is not allowed to happen).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mslesion.services.store.database import Database
from mslesion.services.store.repositories import audit

log = logging.getLogger(__name__)

_STATE_KEY = "mslesion_audit"


@dataclass(frozen=True)
class AuditMark:
    """Who did what; the resource, client and outcome are filled in from the request."""

    actor: str
    role: str | None
    action: str


def mark_for_audit(request: Request, mark: AuditMark) -> None:
    """Ask for this request to be audited (the last mark wins)."""
    request.scope.setdefault("state", {})[_STATE_KEY] = mark


class AuditMiddleware:
    """Writes one audit event per marked request, with the response's status code."""

    def __init__(self, app: ASGIApp, db: Database) -> None:
        self.app = app
        self.db = db

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; a marked one gets its audit event as its response starts."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        written = False
        suppress = False

        async def audited_send(message: Message) -> None:
            nonlocal written, suppress
            if suppress:
                return
            if message["type"] == "http.response.start" and _STATE_KEY in state:
                written = True
                if not await self._write(scope, state[_STATE_KEY], int(message["status"])):
                    suppress = True
                    await _send_unavailable(send)
                    return
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        except Exception:
            if not written and _STATE_KEY in state:
                await self._write(scope, state[_STATE_KEY], 500)
            raise

    async def _write(self, scope: Scope, mark: AuditMark, status: int) -> bool:
        resource = scope.get("path", "")
        query = scope.get("query_string", b"")
        if query:
            resource += "?" + query.decode("latin-1")
        # The path is the caller's text: keep control characters (NUL) out of the database.
        resource = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in resource)
        client = scope.get("client")
        try:
            await run_in_threadpool(
                self._record, mark, resource, client[0] if client else None, status
            )
        except Exception as exc:  # the database is down: refuse rather than serve unaudited
            log.error("audit event not written (%s): response withheld", type(exc).__name__)
            return False
        return True

    def _record(self, mark: AuditMark, resource: str, client: str | None, status: int) -> None:
        with self.db.session() as session:
            audit.record(
                session,
                actor=mark.actor,
                role=mark.role,
                action=mark.action,
                resource=resource,
                client=client,
                outcome=status,
            )


async def _send_unavailable(send: Send) -> None:
    body = b'{"detail":"the audit trail cannot be written; retry later"}'
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"30"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
