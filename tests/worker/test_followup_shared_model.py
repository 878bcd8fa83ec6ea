"""Visits read by different models are compared with one model, on the real node.

Three visits of one head (open-ms longitudinal patient01, study 1) arrive as a patient's
studies: FLAIR only, then FLAIR + T1, then FLAIR only again. Each study's own result comes
from the richest model its series support (FLAIR-only, FLAIR+T1, FLAIR-only), so without
care each comparison would set two models' readings against each other (12 false
"enlarging" lesions measured on one head). The node re-analyses the visit whose own result
came from the other model — the current one in the first comparison, the prior in the
second — and the same anatomy then shows no activity. Lesion identities persist through
both re-analyses, and the database keeps each study's own ranks.

Real segmentation, registration, PostgreSQL and in-process dispatcher; nothing stands in.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mslesion.devtools.dicom_writer import StudyInfo, write_study
from mslesion.services.config import Provider, Settings
from mslesion.services.followup.model import ChangeCategory as C
from mslesion.services.followup.model import FollowUpReport
from mslesion.services.jobs import close_study_now
from mslesion.services.reporting.json_report import StudyReport, read_json_report
from mslesion.services.store.database import Database
from mslesion.services.store.enums import ComparisonState, JobState
from mslesion.services.store.repositories import comparisons, jobs, lesions
from mslesion.services.store.tables import Comparison
from mslesion.worker.dispatch import InProcessDispatcher
from mslesion.worker.runner import JobRunner
from tests.worker.peers import wait_for
from tests.worker.studies import ingest_folder

pytestmark = pytest.mark.slow

PATIENT = "SHARED01"
SOURCE = "open-ms/longitudinal/patient01/study1_{}.nii.gz"
VISITS = (("20220110", ("FLAIR",)), ("20230110", ("FLAIR", "T1W")), ("20240110", ("FLAIR",)))


@dataclass
class Visit:
    job_id: str
    report: StudyReport


@dataclass
class Node:
    settings: Settings
    db: Database
    dispatcher: InProcessDispatcher

    def analyse(self, shared_data: Path, folder: Path, date: str, roles: tuple[str, ...]) -> Visit:
        info = StudyInfo(patient_id=PATIENT, patient_name="SHARED^MODEL", study_date=date)
        write_study({r: shared_data / SOURCE.format(r) for r in roles}, folder, info)
        study_uid = ingest_folder(self.db, self.settings, folder)
        job_id = close_study_now(self.db, self.dispatcher, study_uid, "test")
        assert job_id is not None

        def state() -> JobState:
            with self.db.session() as session:
                job = jobs.get_job(session, job_id)
            assert job is not None
            return job.state

        wait_for(lambda: state() in (JobState.SUCCEEDED, JobState.FAILED), 300, "the job")
        assert state() is JobState.SUCCEEDED
        report = read_json_report(self.settings.results_dir / job_id / "report.json")
        return Visit(job_id, report)

    def comparison_of(self, current: Visit) -> Comparison:
        def finished() -> Comparison | None:
            with self.db.session() as session:
                rows = comparisons.comparisons_of_patient(session, PATIENT)
            done = [
                r
                for r in rows
                if r.current_job_id == current.job_id
                and r.state in (ComparisonState.SUCCEEDED, ComparisonState.FAILED)
            ]
            return done[0] if done else None

        row = wait_for(finished, 300, "the comparison")
        assert row.state is ComparisonState.SUCCEEDED, row.error
        return row

    def followup(self, current: Visit, row: Comparison) -> FollowUpReport:
        path = self.settings.results_dir / current.job_id / "followup" / row.id / "followup.json"
        return FollowUpReport.model_validate_json(path.read_text())


@pytest.fixture
def node(node_settings: Settings, node_db: Database) -> Iterator[Node]:
    settings = node_settings.model_copy(update={"provider": Provider.CPU})
    dispatcher = InProcessDispatcher(JobRunner(settings, node_db), settings)
    dispatcher.start()
    try:
        yield Node(settings, node_db, dispatcher)
    finally:
        dispatcher.stop(60)


def test_visits_read_by_different_models_are_compared_with_the_shared_one(
    node: Node, shared_data: Path, tmp_path: Path
) -> None:
    first, second, third = (
        node.analyse(shared_data, tmp_path / date, date, roles) for date, roles in VISITS
    )
    # Each study's own result: the richest model its series support.
    assert first.report.model_name == third.report.model_name == "ms-cascade-flair"
    assert second.report.model_name == "ms-cascade-flair-t1"
    shared = f"ms-cascade-flair {first.report.model_version}"

    reports = []
    for prior, current, reanalysed in ((first, second, "current"), (second, third, "prior")):
        row = node.comparison_of(current)
        assert row.prior_job_id == prior.job_id  # the latest earlier visit
        report = node.followup(current, row)
        reports.append(report)
        # Read with the one model both visits support, and said so.
        assert f"{report.model_name} {report.model_version}" == shared == report.prior_model
        (note,) = report.notes
        assert f"both were read with {shared}" in note and f"re-analysed: {reanalysed}" in note
        # The same head: no activity once the models' difference is gone.
        assert report.counts[C.NEW] == report.counts[C.ENLARGING] == 0, report.counts
        assert report.activity is False and row.activity is False
        assert report.counts[C.STABLE] > 0
        assert report.total_volume_ml == pytest.approx(report.prior_total_volume_ml, rel=0.05)
        # The single-study results are untouched: each visit keeps its own model's reading.
        own = read_json_report(node.settings.results_dir / current.job_id / "report.json")
        assert own == current.report

    # Identities persist through both re-analyses: the third visit's lesions are the first's.
    # That includes a lesion only the FLAIR-only reading of the middle visit sees (its own
    # FLAIR+T1 reading, ms-cascade-flair-t1 2.1.0, holds 2 of this head's 3 small lesions):
    # the first comparison recorded that reading's ranks, and the second reads the middle
    # visit with the same model again.
    first_ids = {c.tracking_uid for c in reports[0].lesions}
    third_ids = {c.tracking_uid for c in reports[1].lesions}
    assert third_ids <= first_ids, (len(third_ids - first_ids), len(third_ids))

    # The database keeps each study's own ranks (what the next comparison reads), and for the
    # middle visit the ranks of the reading the first comparison made of it.
    with node.db.session() as session:
        for visit in (second, third):
            recorded = lesions.prior_identities(session, _study_id(node, visit), visit.job_id)
            assert recorded, "the comparison recorded no lesion of the current study"
            assert set(recorded) <= {e.rank for e in visit.report.lesions}
        read = lesions.reading_identities(session, _study_id(node, second), second.job_id, shared)
    assert {r.identity.tracking_uid for r in read.values()} == {
        c.tracking_uid for c in reports[0].lesions if c.current_label is not None
    }


def _study_id(node: Node, visit: Visit) -> int:
    with node.db.session() as session:
        job = jobs.get_job(session, visit.job_id)
        assert job is not None
        return int(job.study_id)
