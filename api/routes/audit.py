"""The audit trail, for administrators."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from mslesion.api.deps import Authorize, Principal, SessionDep
from mslesion.api.schemas import AuditEventOut, AuditPage, errors
from mslesion.services.store.enums import Role
from mslesion.services.store.repositories import audit

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("", response_model=AuditPage, responses=errors(422))
def list_events(
    session: SessionDep,
    _: Annotated[Principal, Depends(Authorize(audit="read audit"))],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> AuditPage:
    """Audit events, newest first (admin only)."""
    rows = audit.events(session, limit=limit, offset=offset)
    items = [
        AuditEventOut(
            id=e.id,
            at=e.at,
            actor=e.actor,
            role=Role(e.role) if e.role in set(Role) else None,
            action=e.action,
            resource=e.resource,
            client=e.client,
            outcome=e.outcome,
        )
        for e in rows
    ]
    return AuditPage(items=items, limit=limit, offset=offset)
