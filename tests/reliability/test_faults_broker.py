"""Fault: Redis restarted while jobs and a forwarding are queued (messages lost).

A private ``redis-server`` without persistence holds the queue. Jobs are created while no
worker runs (one more while Redis is down), a finished job's forwarding message is queued
too; Redis is killed and restarted empty. A worker and the study monitor's reconciler then
bring every job to an end and deliver the forward once: nothing the database knows is lost
with the broker.

The jobs are studies without FLAIR: they end fast with a readable failure (a completed
outcome); real-anatomy runs are in test_faults_worker.py.
"""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path

import pydicom
import redis

from mslesion.services.config import Settings
from mslesion.services.jobs import close_study_now
from mslesion.services.listener import StudyMonitor
from mslesion.services.store import filestore
from mslesion.services.store.database import Database
from mslesion.services.store.enums import ForwardState, JobState, ResultKind
from mslesion.services.store.repositories import forwards, jobs, studies
from mslesion.services.store.repositories.jobs import JobOutcome, ResultRecord
from mslesion.services.store.tables import Forward, Job
from mslesion.worker.celery_app import create_celery
from mslesion.worker.dispatch import CeleryDispatcher
from tests.conftest import free_port
from tests.reliability.processes import RedisServer, WorkerProcess
from tests.services.listener.instances import write_series
from tests.worker.peers import StoreSCP, wait_for
from tests.worker.studies import ingest_folder, write_t1_only_study

QUEUED_JOBS = 3


def _job(db: Database, job_id: str) -> Job:
    with db.session() as session:
        job = jobs.get_job(session, job_id)
    assert job is not None
    return job


def _failed(db: Database, job_id: str) -> bool:
    return _job(db, job_id).state == JobState.FAILED


def _forward(db: Database, job_id: str) -> Forward:
    with db.session() as session:
        (row,) = forwards.forwards_of(session, job_id)
    return row


def _finished_job_with_pending_forward(
    db: Database, settings: Settings, tmp: Path, destination: str
) -> str:
    """A succeeded job whose forward is pending. Its SEG and SR are stand-ins (small MR
    instances): what is tested is that the forwarding is offered again, not the files."""
    study_uid = ingest_folder(db, settings, write_t1_only_study(tmp / "forwarded"))
    with db.session() as session:
        study = studies.get_study(session, study_uid)
        assert study is not None and studies.close_study(session, study.id)
        job_id = jobs.create_job(session, study.id, "test").id
        jobs.claim(session, job_id, "earlier-worker")
    out = filestore.job_result_dir(settings.results_dir, job_id)
    out.mkdir(parents=True)
    records = []
    for kind, path in zip(
        (ResultKind.SEG, ResultKind.SR), write_series(tmp / "results", 2), strict=True
    ):
        shutil.copy(path, out / f"{kind.value}.dcm")
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        records.append(
            ResultRecord(
                kind=kind,
                path=str((out / f"{kind.value}.dcm").relative_to(settings.results_dir)),
                media_type="application/dicom",
                study_uid=str(ds.StudyInstanceUID),
                series_uid=str(ds.SeriesInstanceUID),
                sop_instance_uid=str(ds.SOPInstanceUID),
                sop_class_uid=str(ds.SOPClassUID),
                modality=str(ds.Modality),
            )
        )
    outcome = JobOutcome(
        timings_s={},
        series=[],
        provider="test",
        model="test",
        lesion_count=0,
        lesion_volume_ml=0.0,
        brain_volume_ml=None,
        results=records,
    )
    with db.session() as session:
        assert jobs.succeed(session, job_id, outcome)
        forwards.ensure_forwards(session, job_id, [destination])
    return job_id


def test_redis_restart_loses_messages_but_no_job(
    node_settings: Settings, node_db: Database, tmp_path: Path
) -> None:
    broker = RedisServer.start(free_port(), tmp_path)
    pacs = StoreSCP.start(free_port(), tmp_path / "pacs")
    destination = f"dicom://{pacs.aet}@127.0.0.1:{pacs.port}"
    settings = node_settings.model_copy(
        update={
            "broker_url": broker.url,
            "requeue_after_s": 1.0,
            "forward_destinations": [destination],
        }
    )
    app = create_celery(settings)
    dispatcher = CeleryDispatcher(app, ping_timeout_s=1.0)
    worker: WorkerProcess | None = None
    monitor: StudyMonitor | None = None
    try:
        queued = []
        for n in range(QUEUED_JOBS):
            study_uid = ingest_folder(node_db, settings, write_t1_only_study(tmp_path / f"s{n}"))
            job_id = close_study_now(node_db, dispatcher, study_uid, "test")
            assert job_id is not None
            queued.append(job_id)
        forwarded = _finished_job_with_pending_forward(node_db, settings, tmp_path, destination)
        dispatcher.enqueue_forward(forwarded)
        client = redis.Redis(port=broker.port)
        assert client.llen("celery") == QUEUED_JOBS + 1  # every message is in Redis ...
        client.close()

        broker.kill()  # ... and dies with it
        study_uid = ingest_folder(node_db, settings, write_t1_only_study(tmp_path / "down"))
        during = close_study_now(node_db, dispatcher, study_uid, "test")  # broker down
        assert during is not None and _job(node_db, during).enqueued_at is None
        broker = RedisServer.start(broker.port, tmp_path)
        assert redis.Redis(port=broker.port).llen("celery") == 0  # nothing survived

        worker = WorkerProcess.start(settings, tmp_path, "after-restart")
        monitor = StudyMonitor(settings, node_db, dispatcher, interval_s=0.5)
        monitor.start()
        for job_id in [*queued, during]:
            wait_for(
                partial(_failed, node_db, job_id),
                120,
                f"job {job_id} to end (worker log {worker.log_path})",
            )
            job = _job(node_db, job_id)
            assert job.error and "FLAIR" in job.error  # the study's own, readable outcome
            assert job.attempts == 1  # re-offered, but run once
        wait_for(
            lambda: _forward(node_db, forwarded).state == ForwardState.SENT,
            60,
            "the lost forwarding to be offered again and delivered",
        )
        assert _forward(node_db, forwarded).attempts == 1
        assert len([p for p in pacs.folder.iterdir() if p.is_file()]) == 2  # SEG + SR, once
    finally:
        if monitor is not None:
            monitor.stop()
        if worker is not None:
            worker.stop()
        pacs.stop()
        broker.kill()
