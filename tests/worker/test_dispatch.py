"""Dispatchers and the runner's error handling, on the real PostgreSQL and Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mslesion.services.config import JOB_TIME_LIMIT_S, REPO_ROOT, Settings
from mslesion.services.errors import MSLesionError
from mslesion.services.forwarding import DestinationError
from mslesion.services.jobs import close_study_now, offer
from mslesion.services.store.database import Database
from mslesion.services.store.enums import JobState
from mslesion.services.store.repositories import jobs, studies
from mslesion.services.store.tables import Job
from mslesion.worker.celery_app import create_celery
from mslesion.worker.dispatch import CeleryDispatcher, InProcessDispatcher
from mslesion.worker.policy import longest_retry_delay
from mslesion.worker.runner import JobRunner
from tests.conftest import free_port
from tests.worker.peers import wait_for
from tests.worker.studies import ingest_folder, write_t1_only_study


def _job(db: Database, job_id: str) -> Job:
    with db.session() as session:
        job = jobs.get_job(session, job_id)
    assert job is not None
    return job


def _finished(db: Database, job_id: str) -> Job | None:
    job = _job(db, job_id)
    return job if job.state in (JobState.SUCCEEDED, JobState.FAILED) else None


@pytest.fixture
def in_process(node_settings: Settings, node_db: Database) -> Iterator[InProcessDispatcher]:
    dispatcher = InProcessDispatcher(JobRunner(node_settings, node_db), node_settings)
    yield dispatcher
    dispatcher.stop(30)


def test_in_process_dispatcher_runs_a_job_end_to_end(
    node_settings: Settings, node_db: Database, in_process: InProcessDispatcher, tmp_path: Path
) -> None:
    """A study without FLAIR: the job fails once, with the reason, and leaves no results."""
    study_uid = ingest_folder(node_db, node_settings, write_t1_only_study(tmp_path / "t1"))
    job_id = close_study_now(node_db, in_process, study_uid, "test")
    assert job_id is not None
    # leftovers of an earlier, killed attempt are cleared before the run
    stale = node_settings.results_dir / job_id
    staging = node_settings.results_dir / f".{job_id}.abc123"
    for folder in (stale, staging):
        folder.mkdir(parents=True)
        (folder / "lesions_seg.dcm").write_bytes(b"half")
    in_process.start()
    job = wait_for(lambda: _finished(node_db, job_id), 120, "the in-process job")
    assert job.state == JobState.FAILED
    assert job.error and "no FLAIR series" in job.error
    assert job.attempts == 1
    assert not stale.exists() and not staging.exists()
    assert not (node_settings.data_dir / "work" / job_id).exists()
    assert wait_for(in_process.idle, 10, "the dispatcher to be idle")


def test_transient_errors_are_retried_then_fail(
    node_settings: Settings, node_db: Database, in_process: InProcessDispatcher, tmp_path: Path
) -> None:
    """A spool file vanished: each attempt fails with an OS error, retried with backoff until
    the attempts run out; the job then fails with the last reason."""
    study_uid = ingest_folder(node_db, node_settings, write_t1_only_study(tmp_path / "t1"))
    with node_db.session() as session:
        study = studies.get_study(session, study_uid)
        assert study is not None
        paths = studies.study_instance_paths(session, study.id)
    (node_settings.spool_dir / paths[0]).unlink()
    in_process.start()
    job_id = close_study_now(node_db, in_process, study_uid, "test")
    assert job_id is not None
    job = wait_for(lambda: _finished(node_db, job_id), 60, "the retried job to fail")
    assert job.state == JobState.FAILED
    assert job.attempts == node_settings.job_max_retries + 1
    assert job.error and job.error.startswith(f"gave up after {job.attempts} attempt(s)")
    assert "FileNotFoundError" in job.error


def test_incoming_temp_files_in_the_spool_are_never_read(
    node_settings: Settings, node_db: Database, in_process: InProcessDispatcher, tmp_path: Path
) -> None:
    """Only instances recorded in the database reach the job: a half-received temporary
    file beside them (a transfer in progress) is not part of the input."""
    study_uid = ingest_folder(node_db, node_settings, write_t1_only_study(tmp_path / "t1"))
    with node_db.session() as session:
        study = studies.get_study(session, study_uid)
        assert study is not None
        first = node_settings.spool_dir / studies.study_instance_paths(session, study.id)[0]
    (first.parent / ".incoming-abc.part").write_bytes(b"not dicom, still arriving")
    in_process.start()
    job_id = close_study_now(node_db, in_process, study_uid, "test")
    assert job_id is not None
    job = wait_for(lambda: _finished(node_db, job_id), 120, "the job")
    # the study's own problem is reported, not an unreadable file
    assert job.error and "no FLAIR series" in job.error and ".part" not in job.error


def test_celery_dispatcher_ping(redis_url: str) -> None:
    CeleryDispatcher(create_celery(Settings(broker_url=redis_url))).ping()
    down = CeleryDispatcher(
        create_celery(Settings(broker_url=f"redis://127.0.0.1:{free_port()}/0")), 1.0
    )
    with pytest.raises(Exception, match=r"(?i)connect"):
        down.ping()


def test_a_job_offered_to_a_down_broker_stays_queued(
    node_settings: Settings, node_db: Database, tmp_path: Path
) -> None:
    """The database is the source of truth: the reconciler offers the job again later."""
    down = CeleryDispatcher(
        create_celery(Settings(broker_url=f"redis://127.0.0.1:{free_port()}/0"))
    )
    study_uid = ingest_folder(node_db, node_settings, write_t1_only_study(tmp_path / "t1"))
    job_id = close_study_now(node_db, down, study_uid, "test")
    assert job_id is not None
    job = _job(node_db, job_id)
    assert job.state == JobState.QUEUED and job.enqueued_at is None
    assert not offer(node_db, down, job_id)


def test_celery_configuration() -> None:
    settings = Settings(broker_url="redis://localhost:6379/0", forward_retry_backoff_s=60)
    conf = create_celery(settings).conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_serializer == "json" and conf.broker_connection_retry_on_startup
    visibility = conf.broker_transport_options["visibility_timeout"]
    assert visibility > JOB_TIME_LIMIT_S + longest_retry_delay(settings)
    assert longest_retry_delay(settings) == 60 * 2 ** (settings.forward_max_retries - 1)


def test_bad_configuration_fails_at_start() -> None:
    with pytest.raises(MSLesionError, match="MSLESION_BROKER_URL"):
        create_celery(Settings(broker_url=None))
    bad = Settings(broker_url="redis://localhost:6379/0", forward_destinations=["PACS@host:104"])
    with pytest.raises(DestinationError, match="PACS@host:104"):
        create_celery(bad)
    with pytest.raises(DestinationError, match="no scheme"):
        JobRunner(bad, Database("sqlite://"))


def test_importing_the_celery_module_reads_no_settings() -> None:
    """``import worker.celery_app`` reads nothing; ``app`` is made (and checked) on access."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSLESION_")}
    env |= {"MSLESION_BROKER_URL": "redis://localhost:6379/0"}
    env["MSLESION_FORWARD_DESTINATIONS"] = '["dicom://host:104"]'
    code = "import worker.celery_app, worker.dispatch; print('imported')"
    ok = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert ok.returncode == 0 and "imported" in ok.stdout, ok.stderr
    bad = subprocess.run(
        [sys.executable, "-c", "from worker.celery_app import app"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0
    assert "called AE title is missing" in bad.stderr
