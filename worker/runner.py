"""The job runner: one study through the pipeline, with the database as the source of truth.

The Celery tasks and the in-process dispatcher call the same methods, :meth:`JobRunner.run`
and :meth:`JobRunner.forward` for jobs, :meth:`JobRunner.compare` and
:meth:`JobRunner.forward_comparison` for follow-up comparisons, so claiming, idempotency,
error classification and bookkeeping are identical with or without a broker. The runner
decides *what happened*; the caller decides *when to try again* (see :mod:`worker.policy`).

A job that succeeds plans its follow-up comparison in the same transaction (per
``MSLESION_FOLLOWUP_MODE``); the caller offers it only after the job's own forwarding, and the
comparison runs as its own unit of work: it never holds back the study's own results.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydicom
from pydicom import Dataset
from sqlalchemy.orm import Session

from mslesion.services.config import Settings
from mslesion.services.errors import InputError, RegistrationError
from mslesion.services.followup.model import FollowUpReport
from mslesion.services.forwarding import ForwardError, parse_destinations, send
from mslesion.services.pipeline import SegmentResult, segment_study
from mslesion.services.reporting.history_chart import ChartPoint
from mslesion.services.reporting.identity import new_uid
from mslesion.services.reporting.json_report import StudyReport, read_json_report
from mslesion.services.segmentation.catalogue import ModelSet
from mslesion.services.store import filestore
from mslesion.services.store.database import Database
from mslesion.services.store.enums import (
    DICOM_RESULT_KINDS,
    RESULT_MEDIA_TYPES,
    ComparisonState,
    ForwardState,
    JobState,
    ResultKind,
)
from mslesion.services.store.repositories import (
    comparisons,
    forwards,
    history,
    jobs,
    lesions,
    results,
    studies,
)
from mslesion.services.store.repositories.comparisons import ComparisonOutcome
from mslesion.services.store.repositories.jobs import JobOutcome, ResultRecord
from mslesion.services.store.repositories.lesions import Identity, PriorLesion, Reading
from mslesion.services.store.tables import Comparison
from mslesion.worker.attempts import Attempt
from mslesion.worker.outcomes import ForwardOutcome, RunOutcome

if TYPE_CHECKING:  # imported when a comparison runs: a broken follow-up never stops jobs
    from mslesion.services.followup.service import ComparisonResult, PriorIdentities
    from mslesion.services.followup.shared import SharedModelPlan

__all__ = ["ForwardOutcome", "JobRunner", "RunOutcome", "worker_name"]

log = logging.getLogger(__name__)

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
FOLLOWUP_DIR = "followup"  # results/<current job>/followup/<comparison id>/
REPORT_NAME = "report.json"  # a job's JSON report in its results folder
FOLLOWUP_KINDS = {
    "seg": ResultKind.FOLLOWUP_SEG,
    "sr": ResultKind.FOLLOWUP_SR,
    "json": ResultKind.FOLLOWUP_JSON,
    "png": ResultKind.FOLLOWUP_PNG,
}
"""The files of :attr:`ComparisonResult.files` by key; ``sc_<n>`` are secondary captures."""


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
            held = jobs.get_job(session, job_id)
            job = jobs.claim(
                session,
                job_id,
                me,
                lease_s=self.settings.job_lease_s,
                orphaned_by=_dead_local_worker(held.state, held.worker) if held else None,
            )
            if job is None:
                # Finished, unknown, or running in a live worker (a duplicate message).
                log.info("job %s is finished, running elsewhere or unknown: skipped", job_id)
                return RunOutcome.SKIPPED
            attempts, study_id = job.attempts, job.study_id
            paths = studies.study_instance_paths(session, study_id)
        attempt = Attempt("job", job_id, attempts, self.settings.job_max_retries, final_attempt)
        return attempt.run(
            self.settings.data_dir / "work" / job_id,
            lambda work: self._run(job_id, paths, work),
            lambda reason, _error: self._fail(job_id, reason),
            lambda reason: self._requeue_job(job_id, reason, me),
        )

    def _requeue_job(self, job_id: str, reason: str, worker: str) -> None:
        with self.db.session() as session:
            jobs.back_to_queue(session, job_id, reason, worker=worker)

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
            self._plan_followup(session, job_id)
        log.info(
            "job %s succeeded in %.1f s on %s: %d lesion(s)",
            job_id,
            outcome.timings_s["total"],
            outcome.provider,
            outcome.lesion_count,
        )
        return RunOutcome.SUCCEEDED

    def _plan_followup(self, session: Session, job_id: str) -> None:
        """Plan the job's follow-up comparison in its success transaction, if it has a prior.

        A savepoint keeps any failure here from undoing the job's success: the study's own
        results never depend on the follow-up.
        """
        try:
            with session.begin_nested():
                plan = comparisons.plan_after_job(session, job_id, self.settings.followup_mode)
        except Exception:
            log.exception("job %s: follow-up comparison not planned", job_id)
            return
        if plan.comparison_id and plan.created:
            log.info("job %s: follow-up comparison %s %s", job_id, plan.comparison_id, plan.reason)
        elif not plan.comparison_id:
            log.info("job %s: no follow-up comparison: %s", job_id, plan.reason)

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
        return self._deliver_pending(f"job {job_id}", pending, files, final_attempt)

    def _deliver_pending(
        self, what: str, pending: list[tuple[int, str]], files: list[Path], final_attempt: bool
    ) -> ForwardOutcome:
        errors = 0
        for forward_id, destination in pending:
            error = _deliver(destination, files, self.settings)
            errors += error is not None
            with self.db.session() as session:
                forwards.record_attempt(session, forward_id, error=error, final=final_attempt)
            if error is not None:
                log.warning("%s: forwarding failed: %s", what, error)
        if not errors:
            return ForwardOutcome.SENT
        return ForwardOutcome.FAILED if final_attempt else ForwardOutcome.PENDING

    # --- follow-up comparisons ------------------------------------------------------------

    def compare(self, comparison_id: str, *, final_attempt: bool) -> RunOutcome:
        """Run one follow-up comparison if it is not finished yet.

        Claimed like a job. A prior that cannot be registered, or bad input (a result folder
        without its analysis, a FLAIR no longer in the spool), fails the comparison at once
        with the reason; other errors are retried like a job's. The two studies' own results
        are never touched.
        """
        me = worker_name()
        with self.db.session() as session:
            held = comparisons.get_comparison(session, comparison_id)
            row = comparisons.claim(
                session,
                comparison_id,
                me,
                lease_s=self.settings.job_lease_s,
                orphaned_by=_dead_local_worker(held.state, held.worker) if held else None,
            )
            if row is None:
                log.info("comparison %s is finished, running elsewhere or unknown", comparison_id)
                return RunOutcome.SKIPPED
            attempts = row.attempts
            pair = _Pair(row)
        attempt = Attempt(
            "comparison", comparison_id, attempts, self.settings.job_max_retries, final_attempt
        )
        return attempt.run(
            self.settings.data_dir / "work" / f"comparison-{comparison_id}",
            lambda work: self._compare(comparison_id, pair, work),
            lambda reason, error: self._fail_comparison(
                comparison_id,
                reason,
                # A prior that cannot be registered is recorded as such on the comparison.
                {"status": "failed", "reason": reason}
                if isinstance(error, RegistrationError)
                else None,
            ),
            lambda reason: self._requeue_comparison(comparison_id, reason, me),
        )

    def _requeue_comparison(self, comparison_id: str, reason: str, worker: str) -> None:
        with self.db.session() as session:
            comparisons.back_to_queue(session, comparison_id, reason, worker=worker)

    def _compare(self, comparison_id: str, pair: _Pair, work: Path) -> RunOutcome:
        t0 = time.perf_counter()
        root = self.settings.results_dir
        own_dirs = {
            "prior": filestore.job_result_dir(root, pair.prior_job_id),
            "current": filestore.job_result_dir(root, pair.current_job_id),
        }
        prior_report = read_json_report(own_dirs["prior"] / REPORT_NAME)
        current_report = read_json_report(own_dirs["current"] / REPORT_NAME)
        from mslesion.services.followup.shared import (
            own_ranks,
            plan_shared_model,
            ranks_for_record,
        )

        shared = plan_shared_model(prior_report, current_report, self.models)
        with self.db.session() as session:
            current_paths = _flair_paths(session, pair.current_study_id, current_report, "current")
            try:  # the prior's images are only referenced as evidence: optional
                prior_paths = _flair_paths(session, pair.prior_study_id, prior_report, "prior")
            except InputError as exc:
                log.info("comparison %s: no prior evidence referenced (%s)", comparison_id, exc)
                prior_paths = []
            known = lesions.prior_identities(session, pair.prior_study_id, pair.prior_job_id)
            used_max = lesions.max_lesion_number(session, pair.patient_id, pair.issuer)
            loads = history.patient_history(session, pair.patient_id, pair.issuer)
            study_ids = {"prior": pair.prior_study_id, "current": pair.current_study_id}
            study_paths = {
                visit: studies.study_instance_paths(session, study_ids[visit])
                for visit in (shared.reanalyse if shared else ())
            }
            recorded = (
                lesions.reading_identities(
                    session, pair.prior_study_id, pair.prior_job_id, shared.model
                )
                if shared and "prior" in shared.reanalyse
                else {}
            )
        identities, prior_ids = self._identities(known, used_max, prior_report)
        shutil.rmtree(work, ignore_errors=True)  # a killed earlier attempt's leftovers
        read_dirs = dict(own_dirs)
        to_own: dict[str, dict[int, int]] = {}  # re-analysis rank -> own rank, per visit
        for visit, paths in study_paths.items():
            assert shared is not None
            log.info("comparison %s: %s", comparison_id, shared.note)
            read_dirs[visit] = self._reanalyse(work / f"{visit}-shared", paths, shared)
            to_own[visit] = own_ranks(read_dirs[visit], own_dirs[visit])
        if "current" in to_own:
            current_report = read_json_report(read_dirs["current"] / REPORT_NAME)
        if "prior" in to_own:
            reanalysed = read_json_report(read_dirs["prior"] / REPORT_NAME)
            identities = self._carried_identities(
                identities, to_own["prior"], reanalysed, _same_reading(recorded, reanalysed)
            )
        from mslesion.services.followup.sources import flair_sources

        # the current FLAIR's datasets in the analysis's slice order (the follow-up SEG's frames)
        current_sources = flair_sources(
            self._prepare_input(work / "current", current_paths), current_report
        )
        prior_sources = [self._header(rel) for rel in prior_paths]
        out_dir = own_dirs["current"] / FOLLOWUP_DIR / comparison_id
        _clear_results(out_dir)
        prepared_s = time.perf_counter() - t0
        from mslesion.services.followup.service import compare_results

        result = compare_results(
            read_dirs["prior"],
            read_dirs["current"],
            out_dir,
            self.settings,
            current_sources=current_sources,
            prior_sources=prior_sources,
            identities=identities,
            history=_chart_points(loads, current_report),
            notes=[shared.note] if shared else [],
        )
        # the database keeps each study's own ranks: what the next comparison reads
        report = ranks_for_record(
            result.analysis.report, to_own.get("prior"), to_own.get("current")
        )
        outcome = self._comparison_outcome(result)
        outcome.timings_s["prepare_input"] = round(prepared_s, 3)
        outcome.timings_s["total"] = round(time.perf_counter() - t0, 3)
        prior_lesions = {
            e.rank: PriorLesion(e.volume_ml, e.centroid_mm_lps) for e in prior_report.lesions
        }
        with self.db.session() as session:
            if not comparisons.succeed(session, comparison_id, outcome, worker=worker_name()):
                log.warning("comparison %s was taken over by another worker", comparison_id)
                return RunOutcome.SKIPPED
            row = session.get(Comparison, comparison_id)
            assert row is not None
            reading = (
                Reading(shared.model, [c.current_label for c in result.analysis.report.lesions])
                if shared and "current" in shared.reanalyse
                else None
            )
            lesions.record_comparison(session, row, report, prior_ids, prior_lesions, reading)
            forwards.ensure_forwards(
                session,
                pair.current_job_id,
                self.settings.forward_destinations,
                comparison_id=comparison_id,
            )
        log.info(
            "comparison %s succeeded in %.1f s: %s",
            comparison_id,
            outcome.timings_s["total"],
            ", ".join(f"{n} {c}" for c, n in outcome.counts.items() if n),
        )
        return RunOutcome.SUCCEEDED

    def _identities(
        self, known: dict[int, Identity], used_max: int, prior_report: StudyReport
    ) -> tuple[PriorIdentities, dict[int, Identity]]:
        """The prior lesions' identities: as recorded, else from the prior's own report."""
        from mslesion.services.followup.service import LesionIdentity, PriorIdentities

        if known:
            highest = max((lesions.number_of(i.tracking_id) or 0) for i in known.values())
            next_number = max(used_max, highest) + 1
        else:
            known, next_number = lesions.identities_from_report(
                [(e.rank, e.tracking_uid) for e in prior_report.lesions],
                used_max,
                lambda: str(new_uid(self.settings)),
            )
        by_rank = {r: LesionIdentity(i.tracking_uid, i.tracking_id) for r, i in known.items()}
        return PriorIdentities(by_rank, next_number), known

    def _reanalyse(self, work: Path, paths: list[str], shared: SharedModelPlan) -> Path:
        """One visit's study analysed again with the shared model, into ``work/result``."""
        input_dir = self._prepare_input(work, paths)
        model = self.models.get(shared.choice.folder)
        return segment_study(input_dir, work / "result", model, self.settings).out_dir

    def _carried_identities(
        self,
        identities: PriorIdentities,
        to_own: dict[int, int],
        reanalysed: StudyReport,
        recorded: dict[int, Identity],
    ) -> PriorIdentities:
        """The prior's identities moved from its own result's ranks to its re-analysis's.

        ``recorded``: identities an earlier comparison gave this same reading's ranks; they
        come first, so a lesion only the re-analysis sees keeps its identity.
        """
        from mslesion.services.followup.service import LesionIdentity, PriorIdentities
        from mslesion.services.followup.shared import carry_over

        counter = [identities.next_number]

        def fresh() -> LesionIdentity:  # a lesion only the re-analysis sees
            counter[0] += 1
            return LesionIdentity(str(new_uid(self.settings)), f"L{counter[0] - 1}")

        ranks = [e.rank for e in reanalysed.lesions]
        kept = {r: LesionIdentity(i.tracking_uid, i.tracking_id) for r, i in recorded.items()}
        by_rank = carry_over(identities.by_rank, to_own, ranks, fresh, kept)
        return PriorIdentities(by_rank, counter[0])

    def _header(self, rel: str) -> Dataset:
        spool = self.settings.spool_dir.resolve()
        path = (spool / rel).resolve()
        if not path.is_relative_to(spool):
            raise InputError(f"instance path {rel!r} in the database is not in the spool")
        return pydicom.dcmread(path, stop_before_pixels=True)

    def _comparison_outcome(self, result: ComparisonResult) -> ComparisonOutcome:
        report: FollowUpReport = result.analysis.report
        records = []
        for key, path in sorted(result.files.items()):
            kind, part = _followup_kind(key)
            if kind is None:
                log.warning("follow-up output %r is not recorded (unknown kind)", key)
                continue
            records.append(_result_record(kind, path, self.settings.results_dir, part))
        return ComparisonOutcome(
            registration=report.registration.model_dump(mode="json"),
            counts={c.value: int(n) for c, n in report.counts.items()},
            activity=report.activity,
            timings_s=dict(report.timings_s),
            results=records,
        )

    def _fail_comparison(
        self, comparison_id: str, reason: str, registration: dict[str, Any] | None = None
    ) -> RunOutcome:
        log.info("comparison %s failed: %s", comparison_id, reason)
        with self.db.session() as session:
            comparisons.fail(
                session, comparison_id, reason, registration=registration, worker=worker_name()
            )
        return RunOutcome.FAILED

    def forward_comparison(self, comparison_id: str, *, final_attempt: bool) -> ForwardOutcome:
        """Send a comparison's SEG, SR and secondary captures to every pending destination."""
        with self.db.session() as session:
            row = comparisons.get_comparison(session, comparison_id)
            if row is None or row.state != ComparisonState.SUCCEEDED:
                return ForwardOutcome.SENT
            pending = [
                (f.id, f.destination)
                for f in forwards.comparison_forwards(session, comparison_id)
                if f.state == ForwardState.PENDING
            ]
            files = [
                self.settings.results_dir / r.path
                for r in results.comparison_dicom_files(session, comparison_id)
            ]
        return self._deliver_pending(f"comparison {comparison_id}", pending, files, final_attempt)


class _Pair:
    """What a comparison needs of its row, read inside the claiming transaction."""

    def __init__(self, row: Comparison) -> None:
        self.patient_id = row.patient_id
        self.issuer = row.issuer
        self.prior_study_id = row.prior_study_id
        self.current_study_id = row.current_study_id
        self.prior_job_id = row.prior_job_id
        self.current_job_id = row.current_job_id


def _same_reading(
    recorded: dict[int, lesions.ReadIdentity], reanalysed: StudyReport
) -> dict[int, Identity]:
    """The recorded identities of the prior's re-analysis, when ``reanalysed`` repeats it."""
    from mslesion.services.followup.shared import repeated_reading

    kept = repeated_reading(
        {rank: (seen.identity, seen.volume_ml) for rank, seen in recorded.items()},
        {e.rank: e.volume_ml for e in reanalysed.lesions},
    )
    if recorded and not kept:
        log.warning("the prior's re-analysis differs from the one recorded: identities carried")
    return kept


def _flair_paths(session: Session, study_id: int, report: StudyReport, role: str) -> list[str]:
    """Spool paths of the FLAIR series a study's analysis used."""
    used = report.series.get("flair")
    if used is None:
        raise InputError(f"the {role} study's report names no FLAIR series")
    paths = studies.series_instance_paths(session, study_id, used.series_instance_uid)
    if not paths:
        raise InputError(f"the {role} study's FLAIR series is no longer stored on this node")
    return paths


def _chart_points(loads: list[history.StudyLoad], current: StudyReport) -> list[ChartPoint]:
    """The patient's lesion-load timeline up to the current study (later ones left out)."""
    cutoff = _da_date(current.study_date)
    return [
        ChartPoint(load.study_date, load.lesion_volume_ml, active=bool(load.activity))
        for load in loads
        if cutoff is None or load.study_date is None or load.study_date <= cutoff
    ]


def _da_date(value: str | None) -> dt.date | None:
    """A DICOM DA (YYYYMMDD) as a date; None when absent or malformed."""
    try:
        return dt.datetime.strptime((value or "")[:8], "%Y%m%d").date() if value else None
    except ValueError:
        return None


def _followup_kind(key: str) -> tuple[ResultKind | None, int]:
    """The result kind and part of a :attr:`ComparisonResult.files` key (``sc_2``: SC, 2)."""
    if key.startswith("sc_") and key[3:].isdigit() and int(key[3:]) > 0:
        return ResultKind.FOLLOWUP_SC, int(key[3:])
    return FOLLOWUP_KINDS.get(key), 0


def _dead_local_worker(state: str, worker: str | None) -> str | None:
    """The worker holding a running job (or comparison) if it was a local process now gone.

    E.g. a pool process killed by the out-of-memory killer; else None.

    Celery redelivers such a job's message at once (``reject_on_worker_lost``); knowing its
    worker is gone lets the claim take the job over now rather than after the lease. A
    worker on another host, or one still alive here, is never presumed dead by this.
    """
    if state != JobState.RUNNING.value or not worker:
        return None
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return None
    return worker if not _process_exists(int(pid)) else None


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


def _result_record(kind: ResultKind, path: Path, results_root: Path, part: int = 0) -> ResultRecord:
    rec: dict[str, Any] = {
        "kind": kind,
        "part": part,
        "path": str(path.relative_to(results_root)),
        "media_type": MEDIA_TYPES[kind],
    }
    if kind in DICOM_RESULT_KINDS:
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
