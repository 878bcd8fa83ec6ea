"""The quiet-period monitor: one job per complete study, survived database outages."""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path

import pytest
from pydicom import dcmread
from sqlalchemy import select

from mslesion.services.config import Settings
from mslesion.services.listener import Listener, StudyMonitor
from mslesion.services.store.database import Database
from mslesion.services.store.enums import StudyState
from mslesion.services.store.tables import Instance, Job, Study
from tests.services.listener.conftest import SENDER_AET, RecordingDispatcher, storescu
from tests.services.listener.instances import write_series

QUIET_S = 1.5


@pytest.fixture
def quiet_settings(node_settings: Settings) -> Settings:
    return node_settings.model_copy(update={"study_quiet_s": QUIET_S})


def _until_job(monitor: StudyMonitor, deadline_s: float = 20.0) -> list[str]:
    """run_once until the quiet period has passed and it made a job (or the deadline)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        created = monitor.run_once()
        if created:
            return created
        time.sleep(0.2)
    return []


def _jobs(db: Database) -> list[Job]:
    with db.session() as session:
        return list(session.scalars(select(Job)))


def test_a_quiet_study_gets_exactly_one_job(
    listener: Listener, quiet_settings: Settings, node_db: Database, tmp_path: Path
) -> None:
    files = write_series(tmp_path / "series", 3)
    assert storescu(listener.port, files).returncode == 0
    dispatcher = RecordingDispatcher()
    monitor = StudyMonitor(quiet_settings, node_db, dispatcher)

    assert monitor.run_once() == []  # still within the quiet period
    created = _until_job(monitor)
    again = monitor.run_once()

    assert len(created) == 1
    assert again == []
    assert dispatcher.jobs == created
    assert [job.id for job in _jobs(node_db)] == created
    with node_db.session() as session:
        assert session.scalars(select(Study.state)).one() == StudyState.COMPLETE


def test_a_late_instance_reopens_the_study_for_one_more_job(
    listener: Listener, quiet_settings: Settings, node_db: Database, tmp_path: Path
) -> None:
    files = write_series(tmp_path / "first", 2)
    assert storescu(listener.port, files).returncode == 0
    monitor = StudyMonitor(quiet_settings, node_db, RecordingDispatcher())
    first = _until_job(monitor)

    study_uid = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    late = write_series(tmp_path / "late", 1, study_uid=study_uid)
    assert storescu(listener.port, late).returncode == 0

    assert monitor.run_once() == []  # a fresh quiet period started with the late instance
    second = _until_job(monitor)

    assert len(first) == len(second) == 1
    assert first != second
    assert monitor.run_once() == []
    assert len(_jobs(node_db)) == 2


def test_two_senders_of_the_same_study_store_each_instance_once_and_make_one_job(
    listener: Listener,
    quiet_settings: Settings,
    node_db: Database,
    tmp_path: Path,
) -> None:
    files = write_series(tmp_path / "series", 12)
    cmd = ["storescu", "-aec", "MSLESION", "127.0.0.1", str(listener.port)]
    senders = [
        subprocess.Popen([*cmd, "-aet", aet, *map(str, files)], stderr=subprocess.PIPE, text=True)
        for aet in (SENDER_AET, "MODALITY2")
    ]
    errors = [proc.communicate(timeout=120)[1] for proc in senders]

    assert [proc.returncode for proc in senders] == [0, 0], errors
    with node_db.session() as session:
        sops = list(session.scalars(select(Instance.sop_instance_uid)))
        count = session.scalars(select(Study.instance_count)).one()
    assert len(sops) == len(set(sops)) == 12
    assert count == 12
    assert len(list(quiet_settings.spool_dir.rglob("*.dcm"))) == 12

    monitor = StudyMonitor(quiet_settings, node_db, RecordingDispatcher())
    assert len(_until_job(monitor)) == 1
    assert monitor.run_once() == []
    assert len(_jobs(node_db)) == 1


class FlakyDispatcher(RecordingDispatcher):
    """A queue that is down for the first offer."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = 0

    def enqueue_job(self, job_id: str) -> None:
        if not self.refused:
            self.refused += 1
            raise ConnectionError("broker down")
        super().enqueue_job(job_id)


def test_a_job_the_queue_refused_is_offered_again(
    listener: Listener, quiet_settings: Settings, node_db: Database, tmp_path: Path
) -> None:
    assert storescu(listener.port, write_series(tmp_path / "series", 1)).returncode == 0
    dispatcher = FlakyDispatcher()
    monitor = StudyMonitor(quiet_settings, node_db, dispatcher)

    created = _until_job(monitor)

    assert dispatcher.refused == 1
    assert dispatcher.jobs == created  # re-offered by requeue_stale in the same tick
    (job,) = _jobs(node_db)
    assert job.enqueued_at is not None


def test_the_monitor_thread_makes_the_job(
    listener: Listener, quiet_settings: Settings, node_db: Database, tmp_path: Path
) -> None:
    assert storescu(listener.port, write_series(tmp_path / "series", 2)).returncode == 0
    dispatcher = RecordingDispatcher()
    monitor = StudyMonitor(quiet_settings, node_db, dispatcher, interval_s=0.1)

    monitor.start()
    try:
        end = time.monotonic() + 20
        while not dispatcher.jobs and time.monotonic() < end:
            time.sleep(0.1)
    finally:
        monitor.stop()

    assert len(dispatcher.jobs) == 1
    assert [job.id for job in _jobs(node_db)] == dispatcher.jobs


def test_the_monitor_survives_a_database_outage(
    node_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database("postgresql+psycopg://postgres@localhost:1/x")
    monitor = StudyMonitor(node_settings, db, RecordingDispatcher(), interval_s=0.05)
    caplog.set_level(logging.WARNING, logger="mslesion.services.listener.monitor")

    monitor.start()
    try:
        end = time.monotonic() + 20
        while len(caplog.records) < 3 and time.monotonic() < end:
            time.sleep(0.05)
        alive = monitor._thread is not None and monitor._thread.is_alive()
    finally:
        monitor.stop()
        db.dispose()

    assert alive
    assert len(caplog.records) >= 3  # one warning per failed tick: it kept trying
    assert all("database unavailable (OperationalError)" in r.getMessage() for r in caplog.records)
