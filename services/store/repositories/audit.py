"""The audit trail: every read of patient data and every administrative change."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from mslesion.services.store.tables import AuditEvent


def record(
    session: Session,
    *,
    actor: str,
    role: str | None,
    action: str,
    resource: str,
    client: str | None,
    outcome: int,
) -> None:
    """Append one audit event."""
    session.add(
        AuditEvent(
            actor=actor[:64],
            role=role,
            action=action[:64],
            resource=resource[:256],
            client=(client or "")[:64] or None,
            outcome=outcome,
        )
    )


def events(session: Session, *, limit: int = 100, offset: int = 0) -> list[AuditEvent]:
    """Audit events, newest first."""
    rows = session.scalars(
        select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit).offset(offset)
    )
    return list(rows)
