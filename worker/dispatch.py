"""Dispatchers (:class:`services.jobs.Dispatcher`): how job ids reach a worker.

* :class:`CeleryDispatcher` — production: a message on the broker for the Celery workers.
* :class:`InProcessDispatcher` — one machine, no broker: a background thread running the
  same :class:`~worker.runner.JobRunner` methods with the same retry policy.

Both carry jobs, their forwarding, follow-up comparisons and the comparisons' forwarding.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from celery import Celery

from mslesion.services.config import Settings
from mslesion.services.jobs import offer_comparisons_of_job
from mslesion.worker import policy
from mslesion.worker.celery_app import (
    FORWARD_COMPARISON_TASK,
    FORWARD_TASK,
    RUN_COMPARISON_TASK,
    RUN_JOB_TASK,
)
from mslesion.worker.outcomes import ForwardOutcome, RunOutcome

if TYPE_CHECKING:  # the gateway imports this module; only workers need the pipeline
    from mslesion.worker.runner import JobRunner

log = logging.getLogger(__name__)


class CeleryDispatcher:
    """Sends job and forwarding messages to the Celery broker."""

    def __init__(self, app: Celery, ping_timeout_s: float = 3.0) -> None:
        self.app = app
        self.ping_timeout_s = ping_timeout_s

    def enqueue_job(self, job_id: str) -> None:
        """Queue ``mslesion.run_job`` (raises when the broker is unreachable)."""
        self.app.send_task(RUN_JOB_TASK, args=[job_id])

    def enqueue_forward(self, job_id: str) -> None:
        """Queue ``mslesion.forward_results``."""
        self.app.send_task(FORWARD_TASK, args=[job_id])

    def enqueue_comparison(self, comparison_id: str) -> None:
        """Queue ``mslesion.run_comparison`` (raises when the broker is unreachable)."""
        self.app.send_task(RUN_COMPARISON_TASK, args=[comparison_id])

    def enqueue_comparison_forward(self, comparison_id: str) -> None:
        """Queue ``mslesion.forward_comparison``."""
        self.app.send_task(FORWARD_COMPARISON_TASK, args=[comparison_id])

    def ping(self) -> None:
        """Raise if the broker cannot be reached within ``ping_timeout_s``."""
        with self.app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=self.ping_timeout_s)


class _Kind(StrEnum):
    JOB = "job"
    FORWARD = "forward"
    COMPARISON = "comparison"
    COMPARISON_FORWARD = "comparison forward"


@dataclass(order=True)
class _Item:
    due: float
    seq: int
    kind: _Kind = field(compare=False)
    job_id: str = field(compare=False)  # the comparison's id for the COMPARISON* kinds
    retries: int = field(compare=False, default=0)


class InProcessDispatcher:
    """Runs jobs and forwarding in one background thread of this process (no broker).

    Retries are scheduled in memory; if the process stops, queued jobs stay 'queued' in the
    database and :func:`services.jobs.requeue_stale` offers them again after a restart.
    """

    def __init__(self, runner: JobRunner, settings: Settings) -> None:
        self.runner = runner
        self.settings = settings
        self._heap: list[_Item] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopping = False
        self._busy = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the worker thread (idempotent)."""
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._loop, name="mslesion-worker", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop after the item in progress; scheduled retries are dropped (see class doc)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def enqueue_job(self, job_id: str) -> None:
        """Queue a job run now."""
        self._push(_Kind.JOB, job_id, 0, delay_s=0.0)

    def enqueue_forward(self, job_id: str) -> None:
        """Queue a forwarding round now."""
        self._push(_Kind.FORWARD, job_id, 0, delay_s=0.0)

    def enqueue_comparison(self, comparison_id: str) -> None:
        """Queue a follow-up comparison now (after what is queued already)."""
        self._push(_Kind.COMPARISON, comparison_id, 0, delay_s=0.0)

    def enqueue_comparison_forward(self, comparison_id: str) -> None:
        """Queue a forwarding round of a comparison's results now."""
        self._push(_Kind.COMPARISON_FORWARD, comparison_id, 0, delay_s=0.0)

    def ping(self) -> None:
        """Always reachable: the queue is in this process."""

    def idle(self) -> bool:
        """True when nothing is running or scheduled (tests, demos)."""
        with self._cond:
            return not self._heap and not self._busy

    def _push(self, kind: _Kind, job_id: str, retries: int, delay_s: float) -> None:
        item = _Item(time.monotonic() + delay_s, next(self._seq), kind, job_id, retries)
        with self._cond:
            heapq.heappush(self._heap, item)
            self._cond.notify_all()

    def _next(self) -> _Item | None:
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                if self._heap and self._heap[0].due <= now:
                    self._busy = True
                    return heapq.heappop(self._heap)
                self._cond.wait(self._heap[0].due - now if self._heap else None)
            return None

    def _loop(self) -> None:
        while (item := self._next()) is not None:
            try:
                if item.kind is _Kind.JOB:
                    self._run_job(item)
                elif item.kind is _Kind.COMPARISON:
                    self._run_comparison(item)
                else:
                    self._forward(item)
            except Exception:  # e.g. the database is down: same policy as the Celery task
                log.exception("in-process %s of job %s raised", item.kind, item.job_id)
                self._retry(item)
            finally:
                with self._cond:
                    self._busy = False

    def _run_job(self, item: _Item) -> None:
        final = policy.is_final_job_attempt(self.settings, item.retries)
        outcome = self.runner.run(item.job_id, final_attempt=final)
        if outcome is RunOutcome.RETRY:
            self._retry(item)
        elif outcome is RunOutcome.SUCCEEDED:
            if self.settings.forward_destinations:
                self.enqueue_forward(item.job_id)
            try:  # queued after the job's own forwarding; the reconciler retries a failure
                offer_comparisons_of_job(self.runner.db, self, item.job_id)
            except Exception:
                log.exception("job %s: follow-up comparison not offered", item.job_id)

    def _run_comparison(self, item: _Item) -> None:
        final = policy.is_final_job_attempt(self.settings, item.retries)
        outcome = self.runner.compare(item.job_id, final_attempt=final)
        if outcome is RunOutcome.RETRY:
            self._retry(item)
        elif outcome is RunOutcome.SUCCEEDED and self.settings.forward_destinations:
            self.enqueue_comparison_forward(item.job_id)

    def _forward(self, item: _Item) -> None:
        final = policy.is_final_forward_attempt(self.settings, item.retries)
        if item.kind is _Kind.COMPARISON_FORWARD:
            outcome = self.runner.forward_comparison(item.job_id, final_attempt=final)
        else:
            outcome = self.runner.forward(item.job_id, final_attempt=final)
        if outcome is ForwardOutcome.PENDING:
            self._retry(item)

    def _retry(self, item: _Item) -> None:
        if item.kind in (_Kind.JOB, _Kind.COMPARISON):
            if policy.is_final_job_attempt(self.settings, item.retries):
                return
            delay = policy.job_retry_delay(self.settings, item.retries)
        else:
            if policy.is_final_forward_attempt(self.settings, item.retries):
                return
            delay = policy.forward_retry_delay(self.settings, item.retries)
        self._push(item.kind, item.job_id, item.retries + 1, delay_s=delay)
