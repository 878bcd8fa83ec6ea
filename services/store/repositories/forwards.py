"""Forwarding of results to configured destinations."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.store.enums import ForwardState
from services.store.tables import Forward


def ensure_forwards(session: Session, job_id: str, destinations: list[str]) -> list[Forward]:
    """One pending forward per destination not yet sent (idempotent)."""
    existing = {f.destination: f for f in forwards_of(session, job_id)}
    for dest in destinations:
        if dest not in existing:
            fwd = Forward(job_id=job_id, destination=dest)
            session.add(fwd)
            existing[dest] = fwd
    session.flush()
    return [f for f in existing.values() if f.state != ForwardState.SENT]


def forwards_of(session: Session, job_id: str) -> list[Forward]:
    """All forwards of a job."""
    return list(session.scalars(select(Forward).where(Forward.job_id == job_id)))


def record_attempt(session: Session, forward_id: int, *, error: str | None, final: bool) -> None:
    """Count one delivery attempt: sent when ``error`` is None, failed when ``final``."""
    if error is None:
        state = ForwardState.SENT
    else:
        state = ForwardState.FAILED if final else ForwardState.PENDING
    session.execute(
        update(Forward)
        .where(Forward.id == forward_id)
        .values(attempts=Forward.attempts + 1, state=state, last_error=error)
    )


def reset_failed(session: Session, job_id: str) -> int:
    """Make failed forwards pending again (re-send); returns how many."""
    result = session.execute(
        update(Forward)
        .where(Forward.job_id == job_id, Forward.state == ForwardState.FAILED)
        .values(state=ForwardState.PENDING, last_error=None)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
