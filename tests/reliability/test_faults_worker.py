"""Fault: a worker killed (SIGKILL) in the middle of inference.

A real-anatomy study (open-ms patient01, first time point) runs in a real prefork Celery
worker on a private Redis; when the job reaches the cascade the worker is killed:

* only its pool process (what the out-of-memory killer does): Celery redelivers the message
  at once, and the claim takes the job over because its recorded worker no longer exists;
* the whole worker (main process and pool): the message stays unacknowledged in Redis, so
  only the reconciler brings the job back, once its lease has run out; a new worker runs it.

Either way the job ends succeeded exactly once: attempts 2, one result row per kind, one set
of files in its results folder, and its SEG and SR delivered once to a dcmtk storescp.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest

from mslesion.devtools.dicom_writer import StudyInfo, write_study
from mslesion.services.config import Settings
from mslesion.services.followup.artefacts import ANALYSIS_DIR
from mslesion.services.jobs import close_study_now, reconcile
from mslesion.services.store.database import Database
from mslesion.services.store.enums import STUDY_RESULT_KINDS, ForwardState, JobState, ResultKind
from mslesion.services.store.repositories import forwards, jobs
from mslesion.services.store.tables import Forward, Job
from mslesion.worker.celery_app import create_celery
from mslesion.worker.dispatch import CeleryDispatcher
from tests.conftest import free_port
from tests.reliability.processes import RedisServer, WorkerProcess
from tests.worker.peers import StoreSCP, wait_for
from tests.worker.studies import ingest_folder

RUN_TIMEOUT_S = 600  # a real study twice, plus model loads, on a busy 2-core machine
KILL_AT_STAGE = "cascade"


@pytest.fixture(scope="module")
def real_study(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real study as DICOM files, written once for the module."""
    src = shared_data / "open-ms" / "longitudinal" / "patient01"
    folder = tmp_path_factory.mktemp("faults-study")
    info = StudyInfo(patient_id="P01", patient_name="FAULT^PATIENT", study_date="20120301")
    roles = ("FLAIR", "T1W", "T2W")
    write_study({role: src / f"study1_{role}.nii.gz" for role in roles}, folder, info)
    return folder


@dataclass
class Cluster:
    """A node whose jobs go to Celery workers on a private Redis, forwarding to storescp."""

    settings: Settings
    db: Database
    dispatcher: CeleryDispatcher
    pacs: StoreSCP
    tmp: Path
    workers: list[WorkerProcess]

    def job(self, job_id: str) -> Job:
        with self.db.session() as session:
            job = jobs.get_job(session, job_id)
        assert job is not None
        return job

    def start_worker(self, label: str) -> WorkerProcess:
        worker = WorkerProcess.start(self.settings, self.tmp, label)
        self.workers.append(worker)
        return worker

    def submit(self, study: Path) -> str:
        study_uid = ingest_folder(self.db, self.settings, study)
        job_id = close_study_now(self.db, self.dispatcher, study_uid, "test")
        assert job_id is not None
        return job_id

    def wait_stage(self, job_id: str, stage: str) -> Job:
        wait_for(
            lambda: self.job(job_id).stage == stage,
            RUN_TIMEOUT_S,
            f"job {job_id} to reach the {stage} stage",
            interval_s=0.1,
        )
        return self.job(job_id)

    def wait_finished(self, job_id: str) -> Job:
        wait_for(
            lambda: self.job(job_id).state in (JobState.SUCCEEDED, JobState.FAILED),
            RUN_TIMEOUT_S,
            f"job {job_id} to finish (logs in {self.tmp})",
            interval_s=0.5,
        )
        return self.job(job_id)

    def forwards(self, job_id: str) -> list[Forward]:
        with self.db.session() as session:
            return forwards.forwards_of(session, job_id)


def _cluster(settings: Settings, db: Database, tmp: Path, **update: object) -> Iterator[Cluster]:
    broker = RedisServer.start(free_port(), tmp)
    pacs = StoreSCP.start(free_port(), tmp / "pacs")
    settings = settings.model_copy(
        update={
            "broker_url": broker.url,
            "forward_destinations": [f"dicom://{pacs.aet}@127.0.0.1:{pacs.port}"],
            **update,
        }
    )
    cluster = Cluster(
        settings, db, CeleryDispatcher(create_celery(settings)), pacs, tmp, workers=[]
    )
    try:
        yield cluster
    finally:
        for worker in cluster.workers:
            worker.stop()
        pacs.stop()
        broker.kill()


@pytest.fixture
def redelivering(node_settings: Settings, node_db: Database, tmp_path: Path) -> Iterator[Cluster]:
    """The default lease (long): only a known-dead worker lets a claim take a job over."""
    yield from _cluster(node_settings, node_db, tmp_path)


@pytest.fixture
def leased(node_settings: Settings, node_db: Database, tmp_path: Path) -> Iterator[Cluster]:
    """A short lease and requeue time, so the reconciler acts within the test."""
    yield from _cluster(node_settings, node_db, tmp_path, job_lease_s=10.0, requeue_after_s=1.0)


def assert_succeeded_exactly_once(cluster: Cluster, job_id: str) -> Job:
    """Succeeded on the second attempt with one set of results, forwarded once."""
    job = cluster.wait_finished(job_id)
    assert job.state == JobState.SUCCEEDED, job.error
    assert job.attempts == 2 and job.error is None
    kinds = [r.kind for r in job.results]
    assert sorted(kinds) == sorted(STUDY_RESULT_KINDS)  # one row per kind, none twice
    results_root = cluster.settings.results_dir
    on_disk = {  # analysis/ holds internal maps for a later follow-up, never result rows
        str(p.relative_to(results_root))
        for p in results_root.rglob("*")
        if p.is_file() and ANALYSIS_DIR not in p.relative_to(results_root).parts
    }
    assert on_disk == {r.path for r in job.results}  # no leftovers of the killed attempt
    assert not (cluster.settings.data_dir / "work" / job_id).exists()
    wait_for(
        lambda: all(f.state != ForwardState.PENDING for f in cluster.forwards(job_id)),
        120,
        "the forward",
    )
    (fwd,) = cluster.forwards(job_id)
    assert fwd.state == ForwardState.SENT and fwd.attempts == 1
    received = [pydicom.dcmread(p) for p in cluster.pacs.folder.iterdir() if p.is_file()]
    expected = {
        str(r.sop_instance_uid) for r in job.results if r.kind in (ResultKind.SEG, ResultKind.SR)
    }
    assert sorted(str(ds.SOPInstanceUID) for ds in received) == sorted(expected)  # once each
    return job


def test_pool_process_killed_mid_inference_job_completes_once(
    redelivering: Cluster, real_study: Path
) -> None:
    cluster = redelivering
    worker = cluster.start_worker("oom")
    job_id = cluster.submit(real_study)
    running = cluster.wait_stage(job_id, KILL_AT_STAGE)
    pid = int((running.worker or "").rsplit(":", 1)[1])
    assert pid in worker.pool_pids()

    os.kill(pid, signal.SIGKILL)  # the out-of-memory killer picks the pool process

    job = assert_succeeded_exactly_once(cluster, job_id)
    assert int((job.worker or "").rsplit(":", 1)[1]) != pid  # the replacement pool process
    assert worker.proc.poll() is None  # the worker itself lived on
    assert "attempt 2 started" in worker.log()


def test_whole_worker_killed_mid_inference_reconciler_brings_the_job_back(
    leased: Cluster, real_study: Path
) -> None:
    cluster = leased
    first = cluster.start_worker("killed")
    job_id = cluster.submit(real_study)
    cluster.wait_stage(job_id, KILL_AT_STAGE)

    first.kill_all()  # main process and pool at once: nothing requeues the message

    assert cluster.job(job_id).state == JobState.RUNNING  # orphaned
    second = cluster.start_worker("replacement")
    # The reconciler (the study monitor's round) re-offers the job once its lease is over.
    deadline = time.monotonic() + cluster.settings.job_lease_s + 60
    while job_id not in reconcile(cluster.db, cluster.dispatcher, cluster.settings).lost_running:
        assert time.monotonic() < deadline, "the reconciler never re-offered the lost job"
        time.sleep(0.5)
    assert_succeeded_exactly_once(cluster, job_id)
    assert "attempt 2 started" in second.log()
