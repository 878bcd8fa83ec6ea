"""Turning received studies into jobs, and handing jobs and follow-up comparisons to a queue.

The database is the single source of truth: a job row is committed first, then offered to the
queue. If the queue is down the row stays 'queued' and :func:`requeue_stale` offers it again,
so a broker outage delays work but never loses it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from mslesion.services.config import Settings
from mslesion.services.errors import InputError
from mslesion.services.store.database import Database
from mslesion.services.store.repositories import comparisons, jobs, studies

log = logging.getLogger(__name__)


class Dispatcher(Protocol):
    """Hands job ids to workers: Celery in production, a thread in one-machine mode."""

    def enqueue_job(self, job_id: str) -> None:
        """Ask a worker to run the job (may raise when the queue is unreachable)."""

    def enqueue_forward(self, job_id: str) -> None:
        """Ask a worker to forward the job's results to the configured destinations."""

    def enqueue_comparison(self, comparison_id: str) -> None:
        """Ask a worker to run a follow-up comparison (may raise when the queue is down)."""

    def enqueue_comparison_forward(self, comparison_id: str) -> None:
        """Ask a worker to forward a comparison's results to the configured destinations."""

    def ping(self) -> None:
        """Raise if the queue cannot be reached (readiness check)."""


def offer(db: Database, dispatcher: Dispatcher, job_id: str) -> bool:
    """Offer a committed job to the queue; False (logged) if the queue is unreachable."""
    try:
        dispatcher.enqueue_job(job_id)
    except Exception as exc:  # any broker failure: the reconciler retries from the database
        log.warning("job %s not enqueued (%s); the reconciler will retry", job_id, exc)
        return False
    with db.session() as session:
        jobs.mark_enqueued(session, job_id)
    return True


def offer_comparison(db: Database, dispatcher: Dispatcher, comparison_id: str) -> bool:
    """Offer a committed comparison to the queue; False (logged) if the queue is unreachable."""
    try:
        dispatcher.enqueue_comparison(comparison_id)
    except Exception as exc:  # any broker failure: the reconciler retries from the database
        log.warning(
            "comparison %s not enqueued (%s); the reconciler will retry", comparison_id, exc
        )
        return False
    with db.session() as session:
        comparisons.mark_enqueued(session, comparison_id)
    return True


def offer_comparisons_of_job(db: Database, dispatcher: Dispatcher, job_id: str) -> list[str]:
    """Offer the queued comparisons planned when this job succeeded; the ids offered.

    Called after the job's own results were offered for forwarding, so a comparison never
    goes before them.
    """
    with db.session() as session:
        planned = comparisons.queued_for_job(session, job_id)
    return [cid for cid in planned if offer_comparison(db, dispatcher, cid)]


class UnknownStudyError(InputError):
    """A request names a study this node does not hold."""

    http_status = 404


def request_comparison(
    db: Database,
    dispatcher: Dispatcher,
    prior_study_uid: str,
    current_study_uid: str,
    created_by: str,
) -> str:
    """Create an explicit (manual) comparison of two studies and offer it; its id.

    Raises :class:`InputError` when a study is unknown, and what
    :func:`repositories.comparisons.request_comparison` raises.
    """
    with db.session() as session:
        found = {}
        for role, uid in (("prior", prior_study_uid), ("current", current_study_uid)):
            study = studies.get_study(session, uid)
            if study is None:
                raise UnknownStudyError(f"no {role} study {uid} on this node")
            found[role] = study
        comparison_id = comparisons.request_comparison(
            session, found["prior"], found["current"], created_by
        ).id
    log.info("comparison %s requested by %s", comparison_id, created_by)
    offer_comparison(db, dispatcher, comparison_id)
    return comparison_id


def close_quiet_studies(
    db: Database, dispatcher: Dispatcher, quiet_s: float, created_by: str = "listener"
) -> list[str]:
    """Create exactly one job for each study quiet for ``quiet_s`` seconds; return job ids."""
    with db.session() as session:
        candidates = studies.quiet_studies(session, quiet_s)
    created: list[str] = []
    for study_id in candidates:
        with db.session() as session:
            # The conditional update is the lock: one closer wins, the job is made in the
            # same transaction, so a study never gets zero or two jobs for one quiet period.
            if studies.close_study(session, study_id, quiet_s):
                created.append(jobs.create_job(session, study_id, created_by).id)
    for job_id in created:
        log.info("study complete: job %s created", job_id)
        offer(db, dispatcher, job_id)
    return created


def close_study_now(
    db: Database, dispatcher: Dispatcher, study_uid: str, created_by: str
) -> str | None:
    """Complete a study at once (end of an HTTP upload) and offer its new job.

    Returns the new job id, or None if the study had nothing new since its last job.
    """
    with db.session() as session:
        study = studies.get_study(session, study_uid)
        if study is None or not studies.close_study(session, study.id):
            return None
        job_id = jobs.create_job(session, study.id, created_by).id
    offer(db, dispatcher, job_id)
    return job_id


def requeue_stale(db: Database, dispatcher: Dispatcher, older_than_s: float) -> list[str]:
    """Offer again every job still queued ``older_than_s`` after it was last offered."""
    with db.session() as session:
        stale = jobs.stale_queued(session, older_than_s)
    return [job_id for job_id in stale if offer(db, dispatcher, job_id)]


def requeue_lost_running(
    db: Database, dispatcher: Dispatcher, lease_s: float, older_than_s: float
) -> list[str]:
    """Offer again every job 'running' past its lease; returns the job ids offered.

    Such a job's worker died and the message did not come back (e.g. the whole worker was
    killed). The claim then takes it over.
    """
    with db.session() as session:
        lost = jobs.lost_running(session, lease_s, older_than_s)
    for job_id in lost:
        log.warning(
            "job %s running past its lease of %.0f s: worker presumed lost", job_id, lease_s
        )
    return [job_id for job_id in lost if offer(db, dispatcher, job_id)]


def recover_after_restart(db: Database, dispatcher: Dispatcher) -> list[str]:
    """One-machine mode at start: offer every queued or running job again at once.

    Nothing of this node can be running yet, so a 'running' job lost its worker with the last
    process; the runner's claim takes it over when its recorded worker is a dead local process.
    """
    with db.session() as session:
        pending = jobs.stale_queued(session, 0.0) + jobs.lost_running(session, 0.0, 0.0)
        planned = comparisons.stale_queued(session, 0.0) + comparisons.lost_running(
            session, 0.0, 0.0
        )
    offered = [job_id for job_id in pending if offer(db, dispatcher, job_id)]
    return offered + [cid for cid in planned if offer_comparison(db, dispatcher, cid)]


def requeue_lost_forwards(
    db: Database, dispatcher: Dispatcher, older_than_s: float, backoff_s: float
) -> list[str]:
    """Offer forwarding again for jobs whose pending forwards were left untouched.

    Their forwarding message was lost. Returns the job ids offered.
    """
    from mslesion.services.store.repositories import forwards

    with db.session() as session:
        stale = forwards.stale_pending(session, older_than_s, backoff_s)
    offered = []
    for job_id in stale:
        try:
            dispatcher.enqueue_forward(job_id)
        except Exception as exc:  # broker down: the next round tries again
            log.warning("forwarding of job %s not enqueued (%s); will retry", job_id, exc)
            continue
        with db.session() as session:
            forwards.mark_offered(session, job_id)
        offered.append(job_id)
    return offered


def requeue_stale_comparisons(
    db: Database, dispatcher: Dispatcher, older_than_s: float, lease_s: float
) -> list[str]:
    """Offer again stale queued comparisons and those running past their lease; the ids offered.

    Queued: not picked up ``older_than_s`` after they were offered. Running past ``lease_s``:
    their worker is presumed lost, and the claim takes them over.
    """
    with db.session() as session:
        stale = comparisons.stale_queued(session, older_than_s)
        lost = comparisons.lost_running(session, lease_s, older_than_s)
    for comparison_id in lost:
        log.warning(
            "comparison %s running past its lease of %.0f s: worker presumed lost",
            comparison_id,
            lease_s,
        )
    return [cid for cid in stale + lost if offer_comparison(db, dispatcher, cid)]


def requeue_lost_comparison_forwards(
    db: Database, dispatcher: Dispatcher, older_than_s: float, backoff_s: float
) -> list[str]:
    """Offer forwarding again for comparisons whose pending forwards were left untouched."""
    from mslesion.services.store.repositories import forwards

    with db.session() as session:
        stale = forwards.stale_pending_comparisons(session, older_than_s, backoff_s)
    offered = []
    for comparison_id in stale:
        try:
            dispatcher.enqueue_comparison_forward(comparison_id)
        except Exception as exc:  # broker down: the next round tries again
            log.warning(
                "forwarding of comparison %s not enqueued (%s); will retry", comparison_id, exc
            )
            continue
        with db.session() as session:
            forwards.mark_comparison_offered(session, comparison_id)
        offered.append(comparison_id)
    return offered


@dataclass(frozen=True)
class Reconciled:
    """What one reconciler round offered again, by reason."""

    queued: list[str]
    lost_running: list[str]
    lost_forwards: list[str]
    comparisons: list[str] = field(default_factory=list)  # stale queued or lost running
    lost_comparison_forwards: list[str] = field(default_factory=list)


def reconcile(db: Database, dispatcher: Dispatcher, settings: Settings) -> Reconciled:
    """One round of the reconciler: re-offer what the database holds and the queue lost.

    The database says what must happen, the queue may have lost it. Re-offers stale queued
    jobs, jobs running past their lease, lost forwards; the same for follow-up comparisons.
    """
    return Reconciled(
        queued=requeue_stale(db, dispatcher, settings.requeue_after_s),
        lost_running=requeue_lost_running(
            db, dispatcher, settings.job_lease_s, settings.requeue_after_s
        ),
        lost_forwards=requeue_lost_forwards(
            db, dispatcher, settings.requeue_after_s, settings.forward_retry_backoff_s
        ),
        comparisons=requeue_stale_comparisons(
            db, dispatcher, settings.requeue_after_s, settings.job_lease_s
        ),
        lost_comparison_forwards=requeue_lost_comparison_forwards(
            db, dispatcher, settings.requeue_after_s, settings.forward_retry_backoff_s
        ),
    )


def resend(db: Database, dispatcher: Dispatcher, job_id: str) -> int:
    """Make a job's failed forwards pending again and queue the forwarding; returns how many."""
    from mslesion.services.store.repositories import forwards

    with db.session() as session:
        count = forwards.reset_failed(session, job_id)
    if count:
        dispatcher.enqueue_forward(job_id)
    return count
