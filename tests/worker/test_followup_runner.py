"""The worker's follow-up path on the real PostgreSQL and a real dcmtk storescp: a job that
succeeds plans its comparison, forwards its own results first, then the comparison runs as
its own unit of work and its DICOM results are forwarded as their own delivery.

The single-study pipeline and the comparison engine are replaced by stand-ins that write the
same files (segmentation and registration are tested elsewhere); everything between them is
the real runner, dispatcher, database and spool.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom import Dataset
from pydicom.uid import generate_uid

from mslesion.devtools.dicom_writer import StudyInfo
from mslesion.services.config import Settings
from mslesion.services.errors import RegistrationError
from mslesion.services.followup.analysis import FollowUpAnalysis
from mslesion.services.followup.model import ChangeCategory as C
from mslesion.services.jobs import close_study_now
from mslesion.services.pipeline import SegmentResult
from mslesion.services.reporting.history_chart import ChartPoint
from mslesion.services.reporting.json_report import (
    LesionEntry,
    SeriesUsed,
    StudyReport,
    read_json_report,
    write_json_report,
)
from mslesion.services.store.database import Database
from mslesion.services.store.enums import ComparisonState, ForwardState, JobState, ResultKind
from mslesion.services.store.repositories import comparisons, forwards, history, jobs, lesions
from mslesion.services.store.tables import Comparison, Job
from mslesion.worker import runner as runner_module
from mslesion.worker.dispatch import InProcessDispatcher
from mslesion.worker.outcomes import RunOutcome
from mslesion.worker.runner import JobRunner
from tests.conftest import free_port
from tests.corpus.base import mr_dataset, part10
from tests.services.dicom.synthetic import SHAPE, write_series
from tests.services.store.followup_rows import change, report
from tests.worker.peers import StoreSCP, wait_for
from tests.worker.studies import ingest_folder

service = pytest.importorskip("mslesion.services.followup.service")
PATIENT = "FU01"
VOLUMES = {"20230102": 1.0, "20240102": 1.6}


def _stand_in(path: Path, study_uid: str, modality: str, series_uid: str | None = None) -> Path:
    """A small valid DICOM instance of ``study_uid`` standing in for a SEG, SR or SC."""
    ds = mr_dataset(study_uid=study_uid, series_uid=series_uid, patient_id=PATIENT)
    ds.Modality = modality
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(part10(ds))
    return path


def fake_segment(
    source: Path, out_dir: Path, models: Any, settings: Settings, on_stage: Any = None
) -> SegmentResult:
    """What the pipeline leaves in a job's results: report.json (lesions with tracking UIDs,
    the FLAIR series used), a SEG and an SR."""
    first = pydicom.dcmread(sorted(source.iterdir())[0], stop_before_pixels=True)
    study_uid, date = str(first.StudyInstanceUID), str(first.StudyDate)
    volume = VOLUMES[date]
    study_report = StudyReport(
        created=dt.datetime.now(dt.UTC),
        study_instance_uid=study_uid,
        study_date=date,
        model_name="stand-in",
        model_version="1",
        series={"flair": SeriesUsed(series_instance_uid=str(first.SeriesInstanceUID))},
        lesion_count=2,
        total_lesion_volume_ml=volume,
        brain_volume_ml=1200.0,
        lesions=[
            LesionEntry(
                rank=rank,
                volume_ml=volume / 2,
                voxels=100,
                centroid_mm_lps=(float(rank), 0.0, 0.0),
                tracking_uid=str(generate_uid()),
                location="periventricular",
            )
            for rank in (1, 2)
        ],
    )
    out_dir.mkdir(parents=True)
    files = {
        "json": write_json_report(study_report, out_dir / "report.json"),
        "seg": _stand_in(out_dir / "lesions_seg.dcm", study_uid, "SEG"),
        "sr": _stand_in(out_dir / "lesions_sr.dcm", study_uid, "SR"),
    }
    return SegmentResult(out_dir, files, study_report, [], {"cascade": 0.1}, "CPUExecutionProvider")


@dataclass
class FakeCompare:
    """compare_results' stand-in: records its arguments, writes the follow-up files."""

    db: Database
    error: Exception | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(
        self,
        prior_dir: Path,
        current_dir: Path,
        out_dir: Path,
        settings: Settings,
        *,
        current_sources: list[Dataset],
        prior_sources: Sequence[Dataset] = (),
        identities: Any = None,
        history: Sequence[ChartPoint] = (),
        notes: Sequence[str] = (),
    ) -> Any:
        current_job = current_dir.name
        with self.db.session() as session:
            own = forwards.forwards_of(session, current_job)
        self.calls.append(
            {
                "prior_dir": prior_dir,
                "current_dir": current_dir,
                "out_dir": out_dir,
                "current_sources": current_sources,
                "prior_sources": list(prior_sources),
                "identities": identities,
                "history": list(history),
                "notes": list(notes),
                "own_forwards": [f.state for f in own],
            }
        )
        if self.error is not None:
            raise self.error
        prior = read_json_report(prior_dir / "report.json")
        current = read_json_report(current_dir / "report.json")
        one, two = identities.by_rank[1], identities.by_rank[2]
        followup = report(
            prior.study_instance_uid,
            current.study_instance_uid,
            [
                change(one.tracking_uid, one.tracking_id, C.ENLARGING, 1, [1], volume=0.8),
                change(two.tracking_uid, two.tracking_id, C.DISAPPEARED, None, [2]),
                change(
                    current.lesions[1].tracking_uid or "",
                    f"L{identities.next_number}",
                    C.NEW,
                    2,
                    volume=0.8,
                ),
            ],
        )
        uid = current.study_instance_uid
        sc_series = str(generate_uid())
        out_dir.mkdir(parents=True)
        files = {
            "seg": _stand_in(out_dir / "followup_seg.dcm", uid, "SEG"),
            "sr": _stand_in(out_dir / "followup_sr.dcm", uid, "SR"),
            "sc_1": _stand_in(out_dir / "followup_sc_1.dcm", uid, "OT", sc_series),
            "sc_2": _stand_in(out_dir / "followup_sc_2.dcm", uid, "OT", sc_series),
            "json": out_dir / "followup.json",
            "png": out_dir / "followup.png",
        }
        files["json"].write_text(followup.model_dump_json())
        files["png"].write_bytes(b"\x89PNG\r\n\x1a\n")
        analysis = FollowUpAnalysis(followup, None, None, None, None, None)  # type: ignore[arg-type]
        return service.ComparisonResult(analysis, files)


@dataclass
class Node:
    settings: Settings
    db: Database
    runner: JobRunner
    dispatcher: InProcessDispatcher
    compare: FakeCompare
    pacs: StoreSCP

    def job(self, job_id: str) -> Job:
        with self.db.session() as session:
            found = jobs.get_job(session, job_id)
        assert found is not None
        return found

    def comparison(self, cid: str) -> Comparison:
        with self.db.session() as session:
            found = comparisons.get_comparison(session, cid)
        assert found is not None
        return found

    def comparisons_of(self, job_id: str) -> list[Comparison]:
        with self.db.session() as session:
            rows = comparisons.comparisons_of_patient(session, PATIENT)
        return [r for r in rows if r.current_job_id == job_id]

    def analyse(self, folder: Path, date: str) -> str:
        """Ingest a FLAIR study of the patient and let the node analyse it; the job id."""
        info = StudyInfo(patient_id=PATIENT, patient_name="FOLLOW^UP", study_date=date)
        write_series(folder, info)
        study_uid = ingest_folder(self.db, self.settings, folder)
        job_id = close_study_now(self.db, self.dispatcher, study_uid, "test")
        assert job_id is not None
        wait_for(lambda: self.job(job_id).state is JobState.SUCCEEDED, 60, "the job")
        return job_id

    def settled(self) -> bool:
        return self.dispatcher.idle()


@pytest.fixture
def node(
    node_settings: Settings, node_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Node]:
    pacs = StoreSCP.start(free_port(), tmp_path / "pacs")
    settings = node_settings.model_copy(
        update={"forward_destinations": [f"dicom://{pacs.aet}@127.0.0.1:{pacs.port}"]}
    )
    monkeypatch.setattr(runner_module, "segment_study", fake_segment)
    monkeypatch.setattr(JobRunner, "models", property(lambda self: None))
    fake = FakeCompare(node_db)
    monkeypatch.setattr(service, "compare_results", fake)
    runner = JobRunner(settings, node_db)
    dispatcher = InProcessDispatcher(runner, settings)
    dispatcher.start()
    try:
        yield Node(settings, node_db, runner, dispatcher, fake, pacs)
    finally:
        dispatcher.stop(30)
        pacs.stop()


def test_a_second_visit_is_compared_after_its_own_results_went_out(
    node: Node, tmp_path: Path
) -> None:
    prior_job = node.analyse(tmp_path / "prior", "20230102")
    assert wait_for(node.settled, 30, "the prior's forwarding")
    assert node.comparisons_of(prior_job) == []  # the first visit has no prior
    current_job = node.analyse(tmp_path / "current", "20240102")
    (planned,) = wait_for(lambda: node.comparisons_of(current_job), 10, "the plan")
    cid = planned.id
    wait_for(lambda: node.comparison(cid).state is ComparisonState.SUCCEEDED, 60, "it")
    assert wait_for(node.settled, 30, "the comparison's forwarding")
    row = node.comparison(cid)

    # what the comparison was given
    (call,) = node.compare.calls
    results = node.settings.results_dir
    assert call["prior_dir"] == results / prior_job and call["current_dir"] == results / current_job
    assert call["out_dir"] == results / current_job / "followup" / cid
    assert call["notes"] == []  # both visits read by one model: nothing re-analysed
    assert call["own_forwards"] == [ForwardState.SENT]  # the study's own results went first
    sources = call["current_sources"]
    assert len(sources) == SHAPE[2] and len(call["prior_sources"]) == SHAPE[2]
    assert {str(ds.StudyInstanceUID) for ds in sources} == {row.current_study.study_uid}
    normal = np.cross(*np.reshape([float(v) for v in sources[0].ImageOrientationPatient], (2, 3)))
    along = [float(np.dot(normal, [float(v) for v in ds.ImagePositionPatient])) for ds in sources]
    assert along == sorted(along)  # the volume's slice order, the SEG's frame order
    prior_report = read_json_report(results / prior_job / "report.json")
    identities = call["identities"]
    assert identities.next_number == 3
    assert {r: (i.tracking_uid, i.tracking_id) for r, i in identities.by_rank.items()} == {
        e.rank: (e.tracking_uid, f"L{e.rank}") for e in prior_report.lesions
    }
    assert [(p.study_date, p.volume_ml) for p in call["history"]] == [
        (dt.date(2023, 1, 2), 1.0),
        (dt.date(2024, 1, 2), 1.6),
    ]

    # what was recorded
    assert (row.activity, row.attempts, row.error) == (True, 1, None)
    assert row.counts and row.counts["new"] == 1 and row.counts["disappeared"] == 1
    assert row.registration and row.registration["status"] == "registered"
    kinds = sorted((r.kind.value, r.part) for r in row.results)
    assert kinds == [
        ("followup_json", 0),
        ("followup_png", 0),
        ("followup_sc", 1),
        ("followup_sc", 2),
        ("followup_seg", 0),
        ("followup_sr", 0),
    ]
    assert all(r.job_id == current_job for r in row.results)
    assert {r.kind for r in node.job(current_job).results} == {
        ResultKind.SEG,
        ResultKind.SR,
        ResultKind.JSON,
    }
    with node.db.session() as session:
        tracked = lesions.patient_lesions(session, PATIENT)
        loads = history.patient_studies(session, PATIENT)
    assert [t.tracking_id for t in tracked] == ["L1", "L2", "L3"]
    assert [v.category for v in tracked[1].visits] == [None, C.DISAPPEARED]
    assert [(s.activity, s.new_count) for s in loads] == [(None, None), (True, 1)]

    # delivered: each study's SEG and SR, then the comparison's SEG, SR and two captures
    (fwd,) = row.forwards
    assert fwd.state is ForwardState.SENT and fwd.attempts == 1
    received = node.pacs.received()
    followup_uids = {r.sop_instance_uid for r in row.results if r.sop_instance_uid}
    assert len(followup_uids) == 4 and followup_uids <= set(received)
    assert len(received) == 8

    # a duplicate message does nothing
    assert node.runner.compare(cid, final_attempt=False) is RunOutcome.SKIPPED


def test_a_prior_that_cannot_be_registered(node: Node, tmp_path: Path) -> None:
    """The comparison fails at once with the reason; the study's own results stand."""
    node.compare.error = RegistrationError("the prior could not be registered (Dice 0.31)")
    node.analyse(tmp_path / "prior", "20230102")
    current_job = node.analyse(tmp_path / "current", "20240102")
    (planned,) = wait_for(lambda: node.comparisons_of(current_job), 10, "the plan")
    row = wait_for(
        lambda: (r := node.comparison(planned.id)).state is ComparisonState.FAILED and r, 30, "it"
    )
    assert wait_for(node.settled, 30, "the dispatcher")
    assert row.attempts == 1 and len(node.compare.calls) == 1  # never retried
    assert row.error == "the prior could not be registered (Dice 0.31)"
    assert row.registration == {
        "status": "failed",
        "reason": "the prior could not be registered (Dice 0.31)",
    }
    assert row.results == [] and row.forwards == [] and row.activity is None
    job = node.job(current_job)
    assert job.state is JobState.SUCCEEDED
    assert [f.state for f in job.forwards] == [ForwardState.SENT]
    assert len(node.pacs.received()) == 4  # the two studies' SEG and SR


def test_transient_errors_are_retried_then_fail(node: Node, tmp_path: Path) -> None:
    node.compare.error = OSError("results volume unavailable")
    node.analyse(tmp_path / "prior", "20230102")
    current_job = node.analyse(tmp_path / "current", "20240102")
    (planned,) = wait_for(lambda: node.comparisons_of(current_job), 10, "the plan")
    row = wait_for(
        lambda: (r := node.comparison(planned.id)).state is ComparisonState.FAILED and r, 60, "it"
    )
    assert row.attempts == node.settings.job_max_retries + 1
    assert row.error and row.error.startswith(f"gave up after {row.attempts} attempt(s)")
    assert "OSError" in row.error


def test_follow_up_off_plans_nothing(node: Node, tmp_path: Path) -> None:
    from mslesion.services.followup.model import FollowUpMode

    node.runner.settings = node.settings.model_copy(update={"followup_mode": FollowUpMode.OFF})
    node.analyse(tmp_path / "prior", "20230102")
    current_job = node.analyse(tmp_path / "current", "20240102")
    assert wait_for(node.settled, 30, "the dispatcher")
    assert node.comparisons_of(current_job) == [] and node.compare.calls == []


def test_a_failing_plan_never_holds_back_the_job(
    node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> comparisons.Plan:
        raise RuntimeError("planner bug")

    monkeypatch.setattr(comparisons, "plan_after_job", broken)
    node.analyse(tmp_path / "prior", "20230102")
    current_job = node.analyse(tmp_path / "current", "20240102")  # waits for SUCCEEDED
    assert wait_for(node.settled, 30, "the dispatcher")
    assert node.comparisons_of(current_job) == []
    assert [f.state for f in node.job(current_job).forwards] == [ForwardState.SENT]
