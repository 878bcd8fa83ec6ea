"""Process composition: the parts of the node this process runs, started and stopped together.

- ``mslesion serve``: gateway + listener + monitor + an in-process worker (one machine).
- ``mslesion gateway`` / ``mslesion listener``: one part each, jobs go to Celery (production).
- ``mslesion worker``: a Celery worker (see worker/celery_app.py), not composed here.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from mslesion.services.config import Settings
from mslesion.services.errors import MSLesionError
from mslesion.services.jobs import Dispatcher, recover_after_restart
from mslesion.services.logpolicy import apply_log_policy
from mslesion.services.store.database import Database
from mslesion.services.store.enums import Role
from mslesion.services.store.repositories import keys

log = logging.getLogger(__name__)

ADMIN_KEY_NAME = "admin"


@dataclass(frozen=True)
class Parts:
    """Which parts a process runs."""

    http: bool = True
    dicom: bool = True
    in_process_worker: bool = True


def ensure_admin_key(settings: Settings, db: Database, *, create_if_none: bool) -> str | None:
    """Apply ``bootstrap_admin_key``; or, on an empty key table, create an admin key.

    Returns a newly created key's plaintext (to show once), else None.
    """
    with db.session() as session:
        if settings.bootstrap_admin_key is not None:
            value = settings.bootstrap_admin_key.get_secret_value()
            keys.ensure_key(session, ADMIN_KEY_NAME, Role.ADMIN, value)
            return None
        if create_if_none and keys.count_keys(session) == 0:
            return keys.create_key(session, ADMIN_KEY_NAME, Role.ADMIN)
    return None


def celery_dispatcher(settings: Settings) -> Dispatcher:
    """The production dispatcher; needs ``broker_url``."""
    if not settings.broker_url:
        raise MSLesionError(
            "MSLESION_BROKER_URL is not set: this part hands jobs to Celery workers "
            "(use `mslesion serve` to run everything in one process without a broker)"
        )
    from mslesion.worker.celery_app import create_celery
    from mslesion.worker.dispatch import CeleryDispatcher

    return CeleryDispatcher(create_celery(settings))


class Node:
    """The running parts of one process; ``start`` returns once they all accept work."""

    def __init__(self, settings: Settings, parts: Parts) -> None:
        apply_log_policy()  # before any engine or server exists: no PHI in any log line
        self.settings = settings
        self.parts = parts
        self.db = Database(settings.resolved_database_url())
        self.admin_key: str | None = None
        self.dicom_port: int | None = None
        self.http_port: int | None = None
        self._stoppers: list[tuple[str, object]] = []
        self._http_server: object | None = None
        self._http_thread: threading.Thread | None = None
        self.dispatcher: Dispatcher | None = None

    def start(self, *, migrate: bool, create_admin_key: bool) -> None:
        """Migrate if asked, then start the parts (dispatcher first, listener last)."""
        if migrate:
            self.db.migrate()
        self.admin_key = ensure_admin_key(self.settings, self.db, create_if_none=create_admin_key)
        self.dispatcher = self._start_dispatcher()
        if self.parts.http:
            self._start_http()
        if self.parts.dicom:
            self._start_dicom()

    def _start_dispatcher(self) -> Dispatcher:
        if not self.parts.in_process_worker:
            return celery_dispatcher(self.settings)
        from mslesion.worker.dispatch import InProcessDispatcher
        from mslesion.worker.runner import JobRunner

        dispatcher = InProcessDispatcher(JobRunner(self.settings, self.db), self.settings)
        dispatcher.start()
        self._stoppers.append(("worker", dispatcher))
        recovered = recover_after_restart(self.db, dispatcher)
        if recovered:
            log.info("re-offered %d job(s) left by the previous run", len(recovered))
        return dispatcher

    def _start_dicom(self) -> None:
        from mslesion.services.listener.monitor import StudyMonitor
        from mslesion.services.listener.server import Listener

        assert self.dispatcher is not None
        listener = Listener(self.settings, self.db)
        self.dicom_port = listener.start()
        self._stoppers.append(("listener", listener))
        monitor = StudyMonitor(self.settings, self.db, self.dispatcher)
        monitor.start()
        self._stoppers.append(("monitor", monitor))
        log.info("DICOM listener %s on port %d", self.settings.ae_title, self.dicom_port)

    def _start_http(self) -> None:
        import uvicorn

        from mslesion.api.main import create_app
        from mslesion.services.tls import http_server_options

        assert self.dispatcher is not None
        tls = http_server_options(self.settings)  # before anything starts: fail fast
        app = create_app(self.settings, self.db, self.dispatcher)
        config = uvicorn.Config(
            app,
            host=self.settings.http_host,
            port=self.settings.http_port,
            # uvicorn's loggers follow the process's logging (WARNING; INFO with --verbose).
            log_config=None,
            log_level=None,
            access_log=False,  # request paths carry patient IDs (lesion-load): no access log
            **tls,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="http", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise MSLesionError(
                    f"HTTP gateway could not start on {self.settings.http_host}:"
                    f"{self.settings.http_port}"
                )
            time.sleep(0.05)
        self.http_port = int(server.servers[0].sockets[0].getsockname()[1])
        self._http_server, self._http_thread = server, thread
        log.info("HTTP gateway on port %d%s", self.http_port, " (HTTPS)" if tls else "")

    def stop(self) -> None:
        """Stop accepting work first (HTTP, DICOM), then the worker; close the database."""
        if self._http_server is not None:
            self._http_server.should_exit = True  # type: ignore[attr-defined]
            if self._http_thread is not None:
                self._http_thread.join(timeout=10)
        for name, part in reversed(self._stoppers):
            try:
                part.stop()  # type: ignore[attr-defined]
            except Exception:
                log.exception("stopping %s failed", name)
        self.db.dispose()


def run_until_signal(node: Node) -> None:
    """Block until SIGINT/SIGTERM, then stop the node."""
    import signal

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    finally:
        node.stop()
