"""The rules that make lost workers and lost messages safe, on the real database.

* A message for a job running in a live worker is a duplicate: skipped, nothing restarted.
* A running job is taken over only past its lease, or when its worker is known dead.
* The reconciler re-offers jobs running past their lease and forwards whose message was
  lost, once per requeue period, never a forward still counting down to its retry.
* A study that kills every worker it runs on ends failed, visibly, instead of looping.
"""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
from pathlib import Path

from sqlalchemy import update

from mslesion.services.config import JOB_TIME_LIMIT_S, Settings
from mslesion.services.jobs import reconcile
from mslesion.services.store.database import Database
from mslesion.services.store.enums import JobState
from mslesion.services.store.repositories import forwards, jobs, studies
from mslesion.services.store.tables import Forward, Job, utcnow
from mslesion.worker.runner import JobRunner, RunOutcome
from tests.services.listener.conftest import RecordingDispatcher
from tests.worker.studies import ingest_folder, write_t1_only_study


def _new_job(db: Database, settings: Settings, tmp: Path) -> str:
    study_uid = ingest_folder(db, settings, write_t1_only_study(tmp / "study"))
    with db.session() as session:
        study = studies.get_study(session, study_uid)
        assert study is not None and studies.close_study(session, study.id)
        return jobs.create_job(session, study.id, "test").id


def _running(
    db: Database, job_id: str, worker: str, started_ago_s: float, attempts: int = 1
) -> None:
    with db.session() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                state=JobState.RUNNING,
                worker=worker,
                attempts=attempts,
                started_at=utcnow() - dt.timedelta(seconds=started_ago_s),
                enqueued_at=utcnow() - dt.timedelta(seconds=started_ago_s + 1),
            )
        )


def _job(db: Database, job_id: str) -> Job:
    with db.session() as session:
        job = jobs.get_job(session, job_id)
    assert job is not None
    return job


def _dead_local_worker() -> str:
    """``host:pid`` of a process of this host that has exited (a killed worker)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return f"{socket.gethostname()}:{child.pid}"


def test_the_default_lease_outlasts_the_hard_time_limit() -> None:
    assert Settings().job_lease_s > JOB_TIME_LIMIT_S


def test_a_duplicate_message_for_a_live_run_is_skipped(
    node_settings: Settings, node_db: Database, tmp_path: Path
) -> None:
    job_id = _new_job(node_db, node_settings, tmp_path)
    _running(node_db, job_id, "another-host:4242", started_ago_s=30)
    runner = JobRunner(node_settings, node_db)

    assert runner.run(job_id, final_attempt=False) is RunOutcome.SKIPPED

    job = _job(node_db, job_id)
    assert (job.state, job.attempts, job.worker) == (JobState.RUNNING, 1, "another-host:4242")


def test_a_running_job_is_taken_over_only_past_its_lease_or_from_a_dead_worker(
    node_settings: Settings, node_db: Database, tmp_path: Path
) -> None:
    job_id = _new_job(node_db, node_settings, tmp_path)
    _running(node_db, job_id, "host-a:1", started_ago_s=30)
    with node_db.session() as session:
        assert jobs.claim(session, job_id, "host-b:2", lease_s=60) is None
        assert jobs.claim(session, job_id, "host-b:2", orphaned_by="host-c:3") is None
        assert jobs.claim(session, job_id, "host-b:2") is None  # no lease: never
    with node_db.session() as session:
        taken = jobs.claim(session, job_id, "host-b:2", orphaned_by="host-a:1")
        assert taken is not None and taken.attempts == 2 and taken.worker == "host-b:2"
    _running(node_db, job_id, "host-b:2", started_ago_s=120, attempts=2)
    with node_db.session() as session:
        taken = jobs.claim(session, job_id, "host-d:4", lease_s=60)
        assert taken is not None and taken.attempts == 3
    # the worker presumed lost can no longer record an outcome over the new one
    with node_db.session() as session:
        jobs.fail(session, job_id, "late failure", worker="host-b:2")
    assert _job(node_db, job_id).state == JobState.RUNNING


def test_reconciler_reoffers_a_job_running_past_its_lease_once_per_period(
    node_settings: Settings, node_db: Database, tmp_path: Path
) -> None:
    settings = node_settings.model_copy(update={"job_lease_s": 60.0, "requeue_after_s": 30.0})
    fresh = _new_job(node_db, settings, tmp_path / "a")
    lost = _new_job(node_db, settings, tmp_path / "b")
    _running(node_db, fresh, "host-a:1", started_ago_s=10)
    _running(node_db, lost, "host-a:2", started_ago_s=600)
    dispatcher = RecordingDispatcher()

    first = reconcile(node_db, dispatcher, settings)
    second = reconcile(node_db, dispatcher, settings)

    assert first.lost_running == [lost] and second.lost_running == []
    assert dispatcher.jobs == [lost]


def test_reconciler_reoffers_a_lost_forward_but_not_one_awaiting_its_retry(
    node_settings: Settings, node_db: Database, tmp_path: Path
) -> None:
    settings = node_settings.model_copy(
        update={"requeue_after_s": 30.0, "forward_retry_backoff_s": 100.0}
    )
    never_tried = _new_job(node_db, settings, tmp_path / "a")
    retrying = _new_job(node_db, settings, tmp_path / "b")
    for job_id, attempts in ((never_tried, 0), (retrying, 2)):
        with node_db.session() as session:
            forwards.ensure_forwards(session, job_id, ["dicom://PACS@127.0.0.1:104"])
            session.execute(
                update(Forward)
                .where(Forward.job_id == job_id)
                .values(attempts=attempts, updated_at=utcnow() - dt.timedelta(seconds=120))
            )
    dispatcher = RecordingDispatcher()

    first = reconcile(node_db, dispatcher, settings)
    second = reconcile(node_db, dispatcher, settings)

    # the retrying one waits 30 s + its 2nd backoff (200 s) before it counts as lost
    assert first.lost_forwards == [never_tried] and second.lost_forwards == []
    assert dispatcher.forwards == [never_tried]


def test_a_study_that_keeps_killing_its_worker_ends_failed(
    node_settings: Settings, node_db: Database, tmp_path: Path
) -> None:
    job_id = _new_job(node_db, node_settings, tmp_path)
    limit = node_settings.job_max_retries + 1  # attempts a job may have
    _running(node_db, job_id, _dead_local_worker(), started_ago_s=5, attempts=limit)

    outcome = JobRunner(node_settings, node_db).run(job_id, final_attempt=False)

    job = _job(node_db, job_id)
    assert outcome is RunOutcome.FAILED and job.state == JobState.FAILED
    assert job.error and "lost each time" in job.error
