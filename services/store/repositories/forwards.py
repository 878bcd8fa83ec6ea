"""Forwarding of results to configured destinations."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mslesion.services.store.enums import ForwardState
from mslesion.services.store.tables import Forward, utcnow


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


def stale_pending(session: Session, older_than_s: float, backoff_s: float) -> list[str]:
    """Jobs with a forward left pending and untouched for too long: its message was lost.

    A forward never attempted is stale after ``older_than_s`` seconds; one waiting for its
    n-th retry only after its backoff (``backoff_s * 2**(n-1)``) on top, so a retry still
    counting down is not offered twice.
    """
    now = utcnow()
    rows = session.execute(
        select(Forward.job_id, Forward.attempts, Forward.updated_at).where(
            Forward.state == ForwardState.PENDING,
            Forward.updated_at <= now - dt.timedelta(seconds=older_than_s),
        )
    )
    stale: list[str] = []
    for job_id, attempts, updated_at in rows:
        wait_s = older_than_s + (backoff_s * 2 ** (attempts - 1) if attempts else 0.0)
        if updated_at <= now - dt.timedelta(seconds=wait_s) and job_id not in stale:
            stale.append(job_id)
    return stale


def mark_offered(session: Session, job_id: str) -> None:
    """Restart the staleness clock of a job's pending forwards (they were offered again)."""
    session.execute(
        update(Forward)
        .where(Forward.job_id == job_id, Forward.state == ForwardState.PENDING)
        .values(updated_at=utcnow())
    )
