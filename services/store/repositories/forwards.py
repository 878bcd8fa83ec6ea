"""Forwarding of results to configured destinations.

A job's own SEG and SR are one delivery per destination (scope ``""``); each comparison's
DICOM results are another, with their own attempts and state (scope: the comparison's id).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mslesion.services.store.enums import STUDY_SCOPE, ForwardState
from mslesion.services.store.tables import Forward, utcnow


def ensure_forwards(
    session: Session, job_id: str, destinations: list[str], *, comparison_id: str | None = None
) -> list[Forward]:
    """One pending forward per destination not yet sent (idempotent).

    With ``comparison_id``: the forwards of that comparison's results (``job_id`` is its
    current study's job).
    """
    scope = comparison_id or STUDY_SCOPE
    existing = {f.destination: f for f in _of_scope(session, job_id, scope)}
    for dest in destinations:
        if dest not in existing:
            fwd = Forward(job_id=job_id, destination=dest, scope=scope, comparison_id=comparison_id)
            session.add(fwd)
            existing[dest] = fwd
    session.flush()
    return [f for f in existing.values() if f.state != ForwardState.SENT]


def forwards_of(session: Session, job_id: str) -> list[Forward]:
    """All forwards of a job's own results."""
    return _of_scope(session, job_id, STUDY_SCOPE)


def comparison_forwards(session: Session, comparison_id: str) -> list[Forward]:
    """All forwards of a comparison's results."""
    rows = session.scalars(
        select(Forward).where(Forward.scope == comparison_id).order_by(Forward.id)
    )
    return list(rows)


def _of_scope(session: Session, job_id: str, scope: str) -> list[Forward]:
    rows = session.scalars(
        select(Forward).where(Forward.job_id == job_id, Forward.scope == scope).order_by(Forward.id)
    )
    return list(rows)


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
    """Make a job's failed forwards pending again (re-send); returns how many."""
    result = session.execute(
        update(Forward)
        .where(
            Forward.job_id == job_id,
            Forward.scope == STUDY_SCOPE,
            Forward.state == ForwardState.FAILED,
        )
        .values(state=ForwardState.PENDING, last_error=None)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def stale_pending(session: Session, older_than_s: float, backoff_s: float) -> list[str]:
    """Jobs with a forward of their own results left pending and untouched for too long.

    Its message was lost. A forward never attempted is stale after ``older_than_s`` seconds;
    one waiting for its n-th retry only after its backoff (``backoff_s * 2**(n-1)``) on top,
    so a retry still counting down is not offered twice.
    """
    return _stale(session, older_than_s, backoff_s, comparisons=False)


def stale_pending_comparisons(session: Session, older_than_s: float, backoff_s: float) -> list[str]:
    """Comparisons with a forward left pending too long (as :func:`stale_pending`)."""
    return _stale(session, older_than_s, backoff_s, comparisons=True)


def _stale(session: Session, older_than_s: float, backoff_s: float, comparisons: bool) -> list[str]:
    now = utcnow()
    scoped = Forward.scope != STUDY_SCOPE if comparisons else Forward.scope == STUDY_SCOPE
    rows = session.execute(
        select(Forward.job_id, Forward.scope, Forward.attempts, Forward.updated_at).where(
            Forward.state == ForwardState.PENDING,
            scoped,
            Forward.updated_at <= now - dt.timedelta(seconds=older_than_s),
        )
    )
    stale: list[str] = []
    for job_id, scope, attempts, updated_at in rows:
        key = scope if comparisons else job_id
        wait_s = older_than_s + (backoff_s * 2 ** (attempts - 1) if attempts else 0.0)
        if updated_at <= now - dt.timedelta(seconds=wait_s) and key not in stale:
            stale.append(key)
    return stale


def mark_offered(session: Session, job_id: str) -> None:
    """Restart the staleness clock of a job's pending forwards (they were offered again)."""
    session.execute(
        update(Forward)
        .where(
            Forward.job_id == job_id,
            Forward.scope == STUDY_SCOPE,
            Forward.state == ForwardState.PENDING,
        )
        .values(updated_at=utcnow())
    )


def mark_comparison_offered(session: Session, comparison_id: str) -> None:
    """Restart the staleness clock of a comparison's pending forwards."""
    session.execute(
        update(Forward)
        .where(Forward.scope == comparison_id, Forward.state == ForwardState.PENDING)
        .values(updated_at=utcnow())
    )
