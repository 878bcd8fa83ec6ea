"""Jobs and forwarding in a real Celery worker process (prefork, Redis broker, PostgreSQL).

One real-anatomy study (open-ms patient01, first time point) runs once for the module; its
job and forwards are then examined by several tests. Forwarding goes to a real dcmtk
``storescp``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest

from mslesion.devtools.dicom_writer import StudyInfo, write_study
from mslesion.services.config import Settings
from mslesion.services.jobs import close_study_now, resend
from mslesion.services.segmentation.catalogue import ModelSet
from mslesion.services.segmentation.manifest import catalogue_folders, load_manifest
from mslesion.services.store.database import Database
from mslesion.services.store.enums import STUDY_RESULT_KINDS, ForwardState, JobState, ResultKind
from mslesion.services.store.repositories import forwards, jobs
from mslesion.services.store.tables import Forward, Job
from mslesion.worker.celery_app import RUN_JOB_TASK, NodeCelery, create_celery
from mslesion.worker.dispatch import CeleryDispatcher, InProcessDispatcher
from mslesion.worker.runner import JobRunner, RunOutcome
from tests.conftest import free_port
from tests.worker.peers import CeleryWorkerProcess, StoreSCP, wait_for
from tests.worker.studies import ingest_folder, write_t1_only_study

JOB_TIMEOUT_S = 900  # model load plus one real study on a busy 2-core machine
KNOWN_PROVIDERS = {"CPUExecutionProvider", "CUDAExecutionProvider"}


@dataclass
class Node:
    """A node whose jobs run in a Celery worker process."""

    settings: Settings
    db: Database
    app: NodeCelery
    dispatcher: CeleryDispatcher
    worker: CeleryWorkerProcess
    pacs: StoreSCP
    tmp: Path

    def job(self, job_id: str) -> Job:
        with self.db.session() as session:
            job = jobs.get_job(session, job_id)
        assert job is not None
        return job

    def wait_job_finished(self, job_id: str, timeout_s: float = 120) -> Job:
        return wait_for(
            lambda: (
                (job := self.job(job_id)).state in (JobState.SUCCEEDED, JobState.FAILED) and job
            ),
            timeout_s,
            f"job {job_id} to finish (worker log: {self.worker.log_path})",
        )

    def forward(self, job_id: str, destination: str) -> Forward:
        with self.db.session() as session:
            rows = [
                f for f in forwards.forwards_of(session, job_id) if f.destination == destination
            ]
        assert len(rows) == 1, rows
        return rows[0]


@pytest.fixture(scope="module")
def node(module_pg_url: str, module_redis_url: str, module_tmp: Path) -> Iterator[Node]:
    pacs = StoreSCP.start(free_port(), module_tmp / "pacs")
    settings = Settings(
        data_dir=module_tmp / "node",
        database_url=module_pg_url,
        broker_url=module_redis_url,
        forward_destinations=[f"dicom://{pacs.aet}@127.0.0.1:{pacs.port}"],
        forward_max_retries=2,
        forward_retry_backoff_s=0.2,
        job_max_retries=2,
        job_retry_backoff_s=0.2,
        study_quiet_s=1.0,
    )
    db = Database(settings.resolved_database_url())
    worker = None
    try:
        worker = CeleryWorkerProcess.start(settings, module_tmp)
        app = create_celery(settings)
        yield Node(settings, db, app, CeleryDispatcher(app), worker, pacs, module_tmp)
    finally:
        if worker is not None:
            worker.stop()
        pacs.stop()
        db.dispose()


@dataclass
class RealJob:
    job_id: str
    study_uid: str
    wall_s: float


@pytest.fixture(scope="module")
def real_job(node: Node, shared_data: Path) -> RealJob:
    """The real study, ingested, completed, run in the worker and forwarded (once)."""
    src = shared_data / "open-ms" / "longitudinal" / "patient01"
    folder = node.tmp / "study"
    info = StudyInfo(patient_id="P01", patient_name="TEST^PATIENT", study_date="20120301")
    write_study(
        {
            "FLAIR": src / "study1_FLAIR.nii.gz",
            "T1W": src / "study1_T1W.nii.gz",
            "T2W": src / "study1_T2W.nii.gz",
        },
        folder,
        info,
    )
    study_uid = ingest_folder(node.db, node.settings, folder)
    t0 = time.monotonic()
    job_id = close_study_now(node.db, node.dispatcher, study_uid, "test")
    assert job_id is not None
    node.wait_job_finished(job_id, JOB_TIMEOUT_S)
    wall_s = time.monotonic() - t0
    print(f"real study: job wall time in the Celery worker {wall_s:.1f} s")
    dest = node.settings.forward_destinations[0]
    wait_for(lambda: node.forward(job_id, dest).state != ForwardState.PENDING, 120, "the forward")
    return RealJob(job_id, study_uid, wall_s)


def test_real_study_succeeds_in_the_worker(node: Node, real_job: RealJob) -> None:
    job = node.job(real_job.job_id)
    assert job.state == JobState.SUCCEEDED, job.error
    assert job.attempts == 1 and job.error is None
    assert job.stage == "done" and job.progress == 1.0
    assert job.provider in KNOWN_PROVIDERS
    names = {
        f"{m.name} {m.version}"
        for m in map(load_manifest, catalogue_folders(node.settings.model_dir))
    }
    assert job.model in names
    host, pid = (job.worker or "").rsplit(":", 1)
    assert host and int(pid) not in (os.getpid(), node.worker.proc.pid)  # a pool process
    assert job.lesion_count and job.lesion_count > 0
    assert job.lesion_volume_ml and job.lesion_volume_ml > 0
    assert job.brain_volume_ml and 800 < job.brain_volume_ml < 2000
    assert {"read", "select", "preprocess", "cascade", "outputs", "total"} <= set(job.timings_s)
    assert job.timings_s["total"] >= job.timings_s["cascade"] > 0


def test_series_chosen_are_recorded(node: Node, real_job: RealJob) -> None:
    series = {s["role"]: s for s in node.job(real_job.job_id).series}
    chosen = ModelSet(node.settings.model_dir).choose(["flair", "t1", "t2"]).manifest
    assert set(series) == set(chosen.modalities)  # the series the chosen model used
    assert series["flair"]["series_description"] == "AX FLAIR"
    for role, entry in series.items():
        assert entry["series_instance_uid"]
        assert f"selected as {role.upper()}" in entry["decision"]


def test_result_rows_match_the_written_files(node: Node, real_job: RealJob) -> None:
    job = node.job(real_job.job_id)
    rows = {r.kind: r for r in job.results}
    assert set(rows) == set(STUDY_RESULT_KINDS)  # the job's own files, no follow-up ones
    for row in rows.values():
        path = node.settings.results_dir / row.path
        assert path.is_file() and path.parent.name == real_job.job_id
    for kind, modality in ((ResultKind.SEG, "SEG"), (ResultKind.SR, "SR")):
        row = rows[kind]
        ds = pydicom.dcmread(node.settings.results_dir / row.path, stop_before_pixels=True)
        assert row.modality == modality == ds.Modality
        assert row.study_uid == real_job.study_uid == ds.StudyInstanceUID
        assert row.series_uid == ds.SeriesInstanceUID
        assert row.sop_instance_uid == ds.SOPInstanceUID
        assert row.sop_class_uid == ds.SOPClassUID
        assert row.series_number == ds.SeriesNumber
        assert row.media_type == "application/dicom"
    assert rows[ResultKind.PNG].media_type == "image/png"
    # the job's scratch copy of the study is gone; the spool keeps the originals
    assert not (node.settings.data_dir / "work" / real_job.job_id).exists()


def test_seg_and_sr_are_forwarded_by_c_store(node: Node, real_job: RealJob) -> None:
    fwd = node.forward(real_job.job_id, node.settings.forward_destinations[0])
    assert fwd.state == ForwardState.SENT and fwd.attempts == 1 and fwd.last_error is None
    job = node.job(real_job.job_id)
    expected = {
        r.sop_instance_uid: r.sop_class_uid
        for r in job.results
        if r.kind in (ResultKind.SEG, ResultKind.SR)
    }
    received = node.pacs.received()
    assert set(expected) <= set(received)
    for uid, sop_class in expected.items():
        assert received[uid].SOPClassUID == sop_class
        assert received[uid].StudyInstanceUID == real_job.study_uid


def test_running_a_finished_job_again_does_nothing(node: Node, real_job: RealJob) -> None:
    before = node.job(real_job.job_id)
    result_ids = sorted(r.id for r in before.results)
    task = node.app.send_task(RUN_JOB_TASK, args=[real_job.job_id])
    value = wait_for(lambda: node.worker.task_result(task.id), 60, "the repeated task")
    assert value == RunOutcome.SKIPPED.value
    # the runner itself says the same, without loading a model
    runner = JobRunner(node.settings, node.db)
    assert runner.run(real_job.job_id, final_attempt=False) is RunOutcome.SKIPPED
    after = node.job(real_job.job_id)
    assert after.attempts == before.attempts == 1
    assert after.state == JobState.SUCCEEDED
    assert sorted(r.id for r in after.results) == result_ids
    assert after.finished_at == before.finished_at


def test_study_without_flair_fails_once_with_a_readable_reason(node: Node) -> None:
    study_uid = ingest_folder(node.db, node.settings, write_t1_only_study(node.tmp / "t1only"))
    job_id = close_study_now(node.db, node.dispatcher, study_uid, "test")
    assert job_id is not None
    job = node.wait_job_finished(job_id)
    assert job.state == JobState.FAILED
    assert job.error and "FLAIR" in job.error
    assert job.attempts == 1  # bad input is not retried
    assert job.results == [] and job.forwards == []
    assert not (node.settings.results_dir / job_id).exists()


def test_forwarding_to_a_down_destination_fails_then_resend_delivers(
    node: Node, real_job: RealJob
) -> None:
    port = free_port()  # nothing listens here yet
    dest = f"dicom://LATEPACS@127.0.0.1:{port}"
    with node.db.session() as session:
        forwards.ensure_forwards(session, real_job.job_id, [dest])
    node.dispatcher.enqueue_forward(real_job.job_id)
    failed = wait_for(
        lambda: (f := node.forward(real_job.job_id, dest)).state == ForwardState.FAILED and f,
        60,
        "the forward to fail",
    )
    assert failed.attempts == node.settings.forward_max_retries + 1  # first try + retries
    assert failed.last_error and f"LATEPACS@127.0.0.1:{port}" in failed.last_error
    assert "no association" in failed.last_error
    # the destination that worked is not sent to again
    first = node.forward(real_job.job_id, node.settings.forward_destinations[0])
    assert first.state == ForwardState.SENT and first.attempts == 1

    late = StoreSCP.start(port, node.tmp / "late-pacs", aet="LATEPACS")
    try:
        assert resend(node.db, node.dispatcher, real_job.job_id) == 1
        sent = wait_for(
            lambda: (f := node.forward(real_job.job_id, dest)).state == ForwardState.SENT and f,
            60,
            "the re-sent forward",
        )
        assert sent.last_error is None
        job = node.job(real_job.job_id)
        uids = {r.sop_instance_uid for r in job.results if r.modality in ("SEG", "SR")}
        assert uids <= set(late.received())
    finally:
        late.stop()


def test_in_process_dispatcher_uses_the_same_forward_policy(node: Node, real_job: RealJob) -> None:
    """One-machine mode: the same runner and retry policy in a thread, no broker."""
    port = free_port()
    dest = f"dicom://THREADPACS@127.0.0.1:{port}"
    with node.db.session() as session:
        forwards.ensure_forwards(session, real_job.job_id, [dest])
    dispatcher = InProcessDispatcher(JobRunner(node.settings, node.db), node.settings)
    dispatcher.start()
    try:
        dispatcher.ping()
        dispatcher.enqueue_forward(real_job.job_id)
        failed = wait_for(
            lambda: (f := node.forward(real_job.job_id, dest)).state == ForwardState.FAILED and f,
            60,
            "the in-process forward to fail",
        )
        assert failed.attempts == node.settings.forward_max_retries + 1
        scp = StoreSCP.start(port, node.tmp / "thread-pacs", aet="THREADPACS")
        try:
            assert resend(node.db, dispatcher, real_job.job_id) == 1
            wait_for(
                lambda: node.forward(real_job.job_id, dest).state == ForwardState.SENT,
                60,
                "the in-process re-send",
            )
            assert len(scp.received()) == 2
        finally:
            scp.stop()
    finally:
        dispatcher.stop(10)


def test_worker_log_names_no_patient(node: Node, real_job: RealJob) -> None:
    log = node.worker.log()
    assert f"job {real_job.job_id} succeeded" in log
    for phi in ("TEST^PATIENT", "NO^FLAIR", "NOFLAIR01", "20120301"):
        assert phi not in log
