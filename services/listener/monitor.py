"""The study monitor: completes quiet studies and re-offers jobs a queue lost.

It runs in a daemon thread of the listener process. Database outages are logged and
survived: the next tick tries again, so nothing is lost, only delayed.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.exc import SQLAlchemyError

from mslesion.services.config import Settings
from mslesion.services.jobs import Dispatcher, close_quiet_studies, reconcile
from mslesion.services.store.database import Database

log = logging.getLogger(__name__)


class StudyMonitor:
    """Every ``interval_s``: one job per quiet study, and the reconciler's round.

    The reconciler re-offers jobs and forwards the queue lost (see
    :func:`services.jobs.reconcile`).
    """

    def __init__(
        self, settings: Settings, db: Database, dispatcher: Dispatcher, interval_s: float = 1.0
    ) -> None:
        self._settings = settings
        self._db = db
        self._dispatcher = dispatcher
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> list[str]:
        """One tick: close quiet studies, re-offer what the queue lost; the ids of jobs created."""
        created = close_quiet_studies(self._db, self._dispatcher, self._settings.study_quiet_s)
        again = reconcile(self._db, self._dispatcher, self._settings)
        if again.queued or again.lost_running or again.lost_forwards:
            log.info(
                "re-offered %d stale queued job(s), %d lost running job(s), "
                "forwarding of %d job(s)",
                len(again.queued),
                len(again.lost_running),
                len(again.lost_forwards),
            )
        return created

    def start(self) -> None:
        """Run :meth:`run_once` every interval in a daemon thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="study-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the thread to end and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self._tick()
            self._stop.wait(max(0.0, self._interval_s - (time.monotonic() - started)))

    def _tick(self) -> None:
        try:
            self.run_once()
        except SQLAlchemyError as exc:
            # SQL error texts can carry bound parameters: log the kind, never the message.
            log.warning("study monitor: database unavailable (%s); retrying", type(exc).__name__)
        except Exception:  # the monitor must outlive any single bad tick
            log.exception("study monitor: tick failed; retrying")
