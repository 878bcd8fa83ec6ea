"""Thin Celery tasks around the :class:`~worker.runner.JobRunner`.

Each takes a job id (or a comparison id), lets the runner do the work, and turns its outcome
into a retry with backoff (policy in :mod:`worker.policy`; comparisons follow the job policy).

Every task is idempotent: the job, comparison and forward rows in the database say what is
left to do, so a redelivered message (late acks, lost worker) repeats nothing that already
succeeded. A succeeded job first queues its own forwarding, then its follow-up comparison.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from celery import Celery, Task, current_app, shared_task
from celery.signals import worker_init, worker_process_init

from mslesion.services.config import JOB_SOFT_TIME_LIMIT_S, JOB_TIME_LIMIT_S, Settings
from mslesion.services.jobs import offer_comparisons_of_job
from mslesion.services.logpolicy import apply_log_policy
from mslesion.services.store.database import Database
from mslesion.worker import policy
from mslesion.worker.celery_app import (
    FORWARD_COMPARISON_TASK,
    FORWARD_TASK,
    RUN_COMPARISON_TASK,
    RUN_JOB_TASK,
    NodeCelery,
)
from mslesion.worker.dispatch import CeleryDispatcher
from mslesion.worker.runner import ForwardOutcome, JobRunner, RunOutcome

log = logging.getLogger(__name__)

_runner: JobRunner | None = None
_runner_pid: int | None = None
_runner_lock = threading.Lock()


def node_settings(app: Celery) -> Settings:
    """The settings the app was created with."""
    if not isinstance(app, NodeCelery):
        raise RuntimeError(
            "mslesion tasks run only under mslesion.worker.celery_app.create_celery()"
        )
    return app.node_settings


def runner_for(app: Celery) -> JobRunner:
    """This process's runner (database engine and ONNX sessions), created once per process."""
    global _runner, _runner_pid
    with _runner_lock:
        if _runner is None or _runner_pid != os.getpid():  # never reuse a parent's engine
            settings = node_settings(app)
            _runner = JobRunner(settings, Database(settings.resolved_database_url()))
            _runner_pid = os.getpid()
        return _runner


@worker_init.connect
def _log_policy_in_main_process(**_: Any) -> None:
    """The worker's main process logs too (task receipt, failures): same no-PHI policy."""
    apply_log_policy()


@worker_process_init.connect
def _load_model(**_: Any) -> None:
    """Apply the no-PHI log policy and create the ONNX sessions when a pool process starts."""
    apply_log_policy()
    app = current_app._get_current_object()
    if not isinstance(app, NodeCelery):
        return
    try:
        runner_for(app).models.load_all()
    except Exception:  # the first job retries loading it and records the reason
        log.exception("the model could not be loaded at worker start")


@shared_task(
    bind=True,
    name=RUN_JOB_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=JOB_SOFT_TIME_LIMIT_S,
    time_limit=JOB_TIME_LIMIT_S,
)
def run_job(self: Task, job_id: str) -> str:
    """Run one job; retry transient failures with exponential backoff, then forward."""
    settings = node_settings(self.app)
    outcome = _run_with_retries(
        self, settings, lambda final: runner_for(self.app).run(job_id, final_attempt=final)
    )
    if outcome is RunOutcome.SUCCEEDED:
        if settings.forward_destinations:
            self.app.send_task(FORWARD_TASK, args=[job_id])
        _offer_followups(self.app, job_id)
    return outcome.value


def _offer_followups(app: Celery, job_id: str) -> None:
    """Queue the comparisons the job's success planned (after its own forwarding).

    Never fails the task: a comparison not offered now stays queued in the database and the
    reconciler offers it later.
    """
    try:
        offer_comparisons_of_job(runner_for(app).db, CeleryDispatcher(app), job_id)
    except Exception:
        log.exception("job %s: follow-up comparison not offered; the reconciler will", job_id)


@shared_task(bind=True, name=FORWARD_TASK, acks_late=True, reject_on_worker_lost=True)
def forward_results(self: Task, job_id: str) -> str:
    """Send a job's SEG and SR to its pending destinations; retry with exponential backoff.

    After the last retry the failing forwards are marked failed (with the reason) and can be
    re-sent through :func:`services.jobs.resend`.
    """
    return _forward_with_retries(
        self, lambda final: runner_for(self.app).forward(job_id, final_attempt=final)
    )


@shared_task(
    bind=True,
    name=RUN_COMPARISON_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=JOB_SOFT_TIME_LIMIT_S,
    time_limit=JOB_TIME_LIMIT_S,
)
def run_comparison(self: Task, comparison_id: str) -> str:
    """Run one follow-up comparison; retry transient failures as a job's, then forward."""
    settings = node_settings(self.app)
    outcome = _run_with_retries(
        self,
        settings,
        lambda final: runner_for(self.app).compare(comparison_id, final_attempt=final),
    )
    if outcome is RunOutcome.SUCCEEDED and settings.forward_destinations:
        self.app.send_task(FORWARD_COMPARISON_TASK, args=[comparison_id])
    return outcome.value


@shared_task(bind=True, name=FORWARD_COMPARISON_TASK, acks_late=True, reject_on_worker_lost=True)
def forward_comparison(self: Task, comparison_id: str) -> str:
    """Send a comparison's SEG, SR and secondary captures to its pending destinations."""
    return _forward_with_retries(
        self,
        lambda final: runner_for(self.app).forward_comparison(comparison_id, final_attempt=final),
    )


def _run_with_retries(
    task: Task, settings: Settings, run: Callable[[bool], RunOutcome]
) -> RunOutcome:
    """``run(final_attempt)`` under the job retry policy (jobs and comparisons alike)."""
    retries = int(task.request.retries or 0)
    delay = policy.job_retry_delay(settings, retries)
    try:
        outcome = run(policy.is_final_job_attempt(settings, retries))
    except Exception as exc:  # the database could not even record the outcome
        raise task.retry(exc=exc, countdown=delay, max_retries=settings.job_max_retries) from exc
    if outcome is RunOutcome.RETRY:
        raise task.retry(countdown=delay, max_retries=settings.job_max_retries)
    return outcome


def _forward_with_retries(task: Task, forward: Callable[[bool], ForwardOutcome]) -> str:
    """``forward(final_attempt)`` under the forwarding retry policy; the outcome's value."""
    settings = node_settings(task.app)
    retries = int(task.request.retries or 0)
    outcome = forward(policy.is_final_forward_attempt(settings, retries))
    if outcome is ForwardOutcome.PENDING:
        raise task.retry(
            countdown=policy.forward_retry_delay(settings, retries),
            max_retries=settings.forward_max_retries,
        )
    return outcome.value
