"""The job runner: one study through the pipeline, with the database as the source of truth.

The Celery tasks and the in-process dispatcher call the same two methods, :meth:`JobRunner.run`
and :meth:`JobRunner.forward`, so claiming, idempotency, error classification and bookkeeping
are identical with or without a broker. The runner decides *what happened*; the caller decides
*when to try again* (see :mod:`worker.policy`).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pydicom

from mslesion.services.config import Settings
from mslesion.services.dicom.errors import SeriesRulesError
from mslesion.services.errors import InputError, ModelError
from mslesion.services.forwarding import ForwardError, parse_destinations, send
from mslesion.services.pipeline import SegmentResult, segment_study
from mslesion.services.segmentation.catalogue import ModelSet
from mslesion.services.store import filestore
from mslesion.services.store.database import Database
from mslesion.services.store.enums import RESULT_MEDIA_TYPES, ForwardState, JobState, ResultKind
from mslesion.services.store.repositories import forwards, jobs, results, studies
from mslesion.services.store.repositories.jobs import JobOutcome, ResultRecord
from mslesion.services.store.tables import Job
from mslesion.worker.outcomes import ForwardOutcome, RunOutcome

__all__ = ["ForwardOutcome", "JobRunner", "RunOutcome", "worker_name"]

log = logging.getLogger(__name__)

# Problems of the study itself or of the node's model/rules: running again cannot help.
PERMANENT_ERRORS: tuple[type[Exception], ...] = (InputError, ModelError, SeriesRulesError)

# Share of the work done when a pipeline stage starts (the cascade dominates).
STAGE_PROGRESS = {
    "read": 0.02,
    "select": 0.08,
    "assemble": 0.10,
    "preprocess": 0.15,
    "cascade": 0.45,
    "postprocess": 0.85,
    "outputs": 0.90,
}
MEDIA_TYPES = RESULT_MEDIA_TYPES


def worker_name() -> str:
    """``hostname:pid`` of this process (recorded on the jobs it runs)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class JobRunner:
    """Runs jobs and forwards results for one worker process.

    The models (ONNX Runtime sessions) are created on first use and kept for the life of the
    process: creating sessions costs seconds and, on a GPU, memory that must not be claimed
    once per job.
    """

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        parse_destinations(settings.forward_destinations)  # a bad configuration fails here
        self._models: ModelSet | None = None
        self._models_lock = threading.Lock()

    @property
    def models(self) -> ModelSet:
        """The process's model catalogue; each model's sessions are created once, when used."""
        with self._models_lock:
            if self._models is None:
                self._models = ModelSet.from_settings(self.settings)
                log.info("models: %s", ", ".join(str(f.name) for f in self._models.folders))
            return self._models

    # --- jobs -----------------------------------------------------------------------------

    def run(self, job_id: str, *, final_attempt: bool) -> RunOutcome:
        """Run one job if it is not finished yet.

        Bad input fails the job at once with a readable reason; any other error puts it back
        in the queue (:attr:`RunOutcome.RETRY`) unless this is the final attempt.
        """
        me = worker_name()
        with self.db.session() as session:
            job = jobs.claim(
                session,
                job_id,
                me,
                lease_s=self.settings.job_lease_s,
                orphaned_by=_dead_local_worker(jobs.get_job(session, job_id)),
            )
            if job is None:
                # Finished, unknown, or running in a live worker (a duplicate message).
                log.info("job %s is finished, running elsewhere or unknown: skipped", job_id)
                return RunOutcome.SKIPPED
            attempts, study_id = job.attempts, job.study_id
            paths = studies.study_instance_paths(session, study_id)
        if attempts > self.settings.job_max_retries + 1:
            # Only lost workers (killed, e.g. by the out-of-memory killer) count past the
            # retries: a study that kills every worker must end, visibly, not loop.
            return self._fail(
                job_id,
                f"gave up after {attempts - 1} attempt(s): the worker running the job was "
                "lost each time (killed or out of memory)",
            )
        # Attempts are counted in the database, so redeliveries after a lost worker (which
        # do not count as Celery retries) cannot loop forever either.
        final_attempt = final_attempt or attempts > self.settings.job_max_retries
        log.info("job %s: attempt %d started", job_id, attempts)
        work = self.settings.data_dir / "work" / job_id
        try:
            return self._run(job_id, paths, work)
        except PERMANENT_ERRORS as exc:
            return self._fail(job_id, str(exc))
        except Exception as exc:  # transient (database, disk, runtime): retried
            reason = f"{type(exc).__name__}: {exc}"
            if final_attempt:
                return self._fail(job_id, f"gave up after {attempts} attempt(s): {reason}")
            log.warning("job %s: attempt %d failed (%s); will retry", job_id, attempts, reason)
            with self.db.session() as session:
                jobs.back_to_queue(session, job_id, reason, worker=me)
            return RunOutcome.RETRY
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _run(self, job_id: str, paths: list[str], work: Path) -> RunOutcome:
        t0 = time.perf_counter()
        input_dir = self._prepare_input(work, paths)
        out_dir = filestore.job_result_dir(self.settings.results_dir, job_id)
        _clear_results(out_dir)
        prepared_s = time.perf_counter() - t0
        result = segment_study(
            input_dir,
            out_dir,
            self.models,
            self.settings,
            on_stage=lambda stage: self._set_stage(job_id, stage),
        )
        outcome = self._outcome(result)
        outcome.timings_s["prepare_input"] = round(prepared_s, 3)
        outcome.timings_s["total"] = round(time.perf_counter() - t0, 3)
        with self.db.session() as session:
            if not jobs.succeed(session, job_id, outcome, worker=worker_name()):
                # Another worker took the job over (we were presumed dead): its run counts.
                log.warning("job %s was taken over by another worker; result dropped", job_id)
                return RunOutcome.SKIPPED
            forwards.ensure_forwards(session, job_id, self.settings.forward_destinations)
        log.info(
            "job %s succeeded in %.1f s on %s: %d lesion(s)",
            job_id,
            outcome.timings_s["total"],
            outcome.provider,
            outcome.lesion_count,
        )
        return RunOutcome.SUCCEEDED

    def _fail(self, job_id: str, reason: str) -> RunOutcome:
        log.info("job %s failed: %s", job_id, reason)
        with self.db.session() as session:
            jobs.fail(session, job_id, reason, worker=worker_name())
        return RunOutcome.FAILED

    def _set_stage(self, job_id: str, stage: str) -> None:
        with self.db.session() as session:
            jobs.set_stage(session, job_id, stage, STAGE_PROGRESS.get(stage, 0.0))

    def _prepare_input(self, work: Path, paths: list[str]) -> Path:
        """The job's input folder: links to (or copies of) the instances recorded in the database.

        Hard links, copies across file systems. Names are made here; temporary
        ``.incoming-*`` files of transfers in progress are never recorded, so never read.
        """
        if not paths:
            raise InputError("the study has no stored instances")
        shutil.rmtree(work, ignore_errors=True)  # a killed earlier attempt's leftovers
        input_dir = work / "input"
        input_dir.mkdir(parents=True)
        spool = self.settings.spool_dir.resolve()
        for n, rel in enumerate(sorted(paths)):
            src = (spool / rel).resolve()
            if not src.is_relative_to(spool) or src.name.startswith("."):
                raise InputError(f"instance path {rel!r} in the database is not in the spool")
            dst = input_dir / f"{n:06d}.dcm"
            try:
                os.link(src, dst)
            except FileNotFoundError:
                raise
            except OSError:  # another file system, or links not allowed: copy
                shutil.copyfile(src, dst)
        return input_dir

    def _outcome(self, result: SegmentResult) -> JobOutcome:
        report = result.report
        return JobOutcome(
            timings_s=dict(result.timings_s),
            series=_series_chosen(result),
            provider=result.provider,
            model=f"{report.model_name} {report.model_version}",
            lesion_count=report.lesion_count,
            lesion_volume_ml=report.total_lesion_volume_ml,
            brain_volume_ml=report.brain_volume_ml,
            results=[
                _result_record(ResultKind(kind), path, self.settings.results_dir)
                for kind, path in result.files.items()
            ],
        )

    # --- forwarding -----------------------------------------------------------------------

    def forward(self, job_id: str, *, final_attempt: bool) -> ForwardOutcome:
        """Send the job's SEG and SR to every destination still pending, once each."""
        with self.db.session() as session:
            job = jobs.get_job(session, job_id)
            if job is None or job.state != JobState.SUCCEEDED:
                return ForwardOutcome.SENT
            pending = [
                (f.id, f.destination)
                for f in forwards.forwards_of(session, job_id)
                if f.state == ForwardState.PENDING
            ]
            files = [
                self.settings.results_dir / r.path for r in results.job_dicom_files(session, job_id)
            ]
        errors = 0
        for forward_id, destination in pending:
            error = _deliver(destination, files, self.settings)
            errors += error is not None
            with self.db.session() as session:
                forwards.record_attempt(session, forward_id, error=error, final=final_attempt)
            if error is not None:
                log.warning("job %s: forwarding failed: %s", job_id, error)
        if not errors:
            return ForwardOutcome.SENT
        return ForwardOutcome.FAILED if final_attempt else ForwardOutcome.PENDING


def _dead_local_worker(job: Job | None) -> str | None:
    """The worker holding a running job if it was a local process that no longer exists.

    E.g. a pool process killed by the out-of-memory killer; else None.

    Celery redelivers such a job's message at once (``reject_on_worker_lost``); knowing its
    worker is gone lets the claim take the job over now rather than after the lease. A
    worker on another host, or one still alive here, is never presumed dead by this.
    """
    if job is None or job.state != JobState.RUNNING or not job.worker:
        return None
    host, _, pid = job.worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return None
    return job.worker if not _process_exists(int(pid)) else None


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _deliver(destination: str, files: list[Path], settings: Settings) -> str | None:
    """None when delivered, else the readable reason."""
    try:
        send(destination, files, settings)
    except ForwardError as exc:
        return str(exc)
    except Exception as exc:  # a bug or an unexpected library error: still only this round
        log.exception("forwarding to a destination raised")
        return f"{type(exc).__name__}: {exc}"
    return None


def _clear_results(out_dir: Path) -> None:
    """Remove what a killed earlier attempt left: the results folder and its staging folders.

    Staging folders are ``.<job id>.*`` beside it (see services.pipeline).
    """
    shutil.rmtree(out_dir, ignore_errors=True)
    for staging in out_dir.parent.glob(f".{out_dir.name}.*"):
        shutil.rmtree(staging, ignore_errors=True)


def _series_chosen(result: SegmentResult) -> list[dict[str, Any]]:
    """Per role: the series used and the selection decision that chose it."""
    chosen = []
    for role, used in result.report.series.items():
        decision = next(
            (
                line
                for line in result.decisions
                if used.series_instance_uid in line and "selected as" in line
            ),
            None,
        )
        chosen.append({"role": role, **used.model_dump(), "decision": decision})
    return chosen


def _result_record(kind: ResultKind, path: Path, results_root: Path) -> ResultRecord:
    rec: dict[str, Any] = {
        "kind": kind,
        "path": str(path.relative_to(results_root)),
        "media_type": MEDIA_TYPES[kind],
    }
    if kind in (ResultKind.SEG, ResultKind.SR):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        number = ds.get("SeriesNumber")
        rec |= {
            "study_uid": str(ds.StudyInstanceUID),
            "series_uid": str(ds.SeriesInstanceUID),
            "sop_instance_uid": str(ds.SOPInstanceUID),
            "sop_class_uid": str(ds.SOPClassUID),
            "modality": str(ds.Modality),
            "series_number": int(number) if number not in (None, "") else None,
            "series_description": str(ds.get("SeriesDescription", "")) or None,
        }
    return ResultRecord(**rec)
