"""Schemathesis against the gateway's own OpenAPI document, on a real PostgreSQL database.

Every operation of ``/openapi.json`` is called with generated requests (valid and invalid
parameters and bodies) as an administrator, on a node seeded with a succeeded job (SEG, SR,
JSON, PNG results, a failed forward), a failed job, an analysed patient and a succeeded
follow-up comparison (a secondary capture, a JSON report, tracked lesions), so the happy
paths are reached as well as the refusals: generated path parameters are replaced by the
seeded identifiers in about half of the examples. Every response must be a non-5xx, with a
documented status code, content type, headers and a body matching the documented schema.

The STOW-RS and zip-upload request bodies are opaque to the generator (a multipart body and
a zip archive); it still sends arbitrary bytes and media types to them, which must be
refused cleanly. Their real bodies are covered by tests/api/test_corpus.py.

CI runs ``MSLESION_SCHEMATHESIS_EXAMPLES`` examples per operation (default 25). A longer run,
as documented in docs/RELIABILITY.md:

    MSLESION_SCHEMATHESIS_EXAMPLES=200 .venv/bin/pytest tests/api/test_schemathesis.py
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mslesion.api.main import create_app
from mslesion.services.config import Settings
from mslesion.services.followup.model import ChangeCategory
from mslesion.services.ingest import read_header, store_instance
from mslesion.services.store.database import Database
from mslesion.services.store.enums import ResultKind, Role, Source
from mslesion.services.store.filestore import job_result_dir
from mslesion.services.store.repositories import forwards, jobs, lesions, studies
from mslesion.services.store.repositories.jobs import JobOutcome, ResultRecord
from mslesion.services.store.repositories.lesions import PriorLesion
from tests.api.conftest import Gateway, RecordingDispatcher
from tests.corpus.base import mr_dataset, new_uid, part10
from tests.services.store.followup_rows import analysed, change, report, succeeded_comparison

EXAMPLES = int(os.environ.get("MSLESION_SCHEMATHESIS_EXAMPLES", "25"))
PATIENT_ID = "FUZZ01"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _schema_source() -> Any:
    """The gateway app, only to read its OpenAPI document (nothing is stored, no database is
    connected: the requests themselves go to each test's own app)."""
    folder = Path(tempfile.gettempdir()) / "mslesion-openapi-unused"
    return create_app(Settings(data_dir=folder), Database("sqlite://"), RecordingDispatcher())


schema = schemathesis.openapi.from_asgi("/openapi.json", _schema_source())


# The seeded identifiers of the running test; read when a path parameter is drawn.
_SEEDED: dict[str, str] = {}


def _with_seeded(params: dict[str, Any] | None) -> dict[str, Any] | None:
    if not params:
        return params
    return {k: _SEEDED.get(k, v) for k, v in params.items()}


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> Any:
    """Half the examples address the seeded rows, so the 200 answers are exercised too."""
    return st.sampled_from([path_parameters, _with_seeded(path_parameters)])


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _result_records(
    settings: Settings, job_id: str, study_uid: str
) -> tuple[list[ResultRecord], str, str]:
    """SEG/SR stand-ins (small valid DICOM files), a JSON report and a PNG, written to disk."""
    job_dir = job_result_dir(settings.results_dir, job_id)
    series_uid = new_uid(2)
    records: list[ResultRecord] = []
    sop = ""
    for kind, modality, number in ((ResultKind.SEG, "SEG", 100), (ResultKind.SR, "SR", 101)):
        ds = mr_dataset(study_uid=study_uid, series_uid=series_uid, patient_id=PATIENT_ID)
        path = job_dir / f"{kind.value}.dcm"
        _write(path, part10(ds))
        sop = sop or str(ds.SOPInstanceUID)
        records.append(
            ResultRecord(
                kind=kind,
                path=str(path.relative_to(settings.results_dir)),
                media_type="application/dicom",
                study_uid=study_uid,
                series_uid=series_uid,
                sop_instance_uid=str(ds.SOPInstanceUID),
                sop_class_uid=str(ds.SOPClassUID),
                modality=modality,
                series_number=number,
                series_description=f"fuzz {modality}",
            )
        )
    for kind, name, media, data in (
        (ResultKind.JSON, "report.json", "application/json", b'{"lesions": 2}'),
        (ResultKind.PNG, "montage.png", "image/png", b"\x89PNG\r\n\x1a\n"),
    ):
        _write(job_dir / name, data)
        rel = str((job_dir / name).relative_to(settings.results_dir))
        records.append(ResultRecord(kind=kind, path=rel, media_type=media))
    return records, series_uid, sop


def _stored_study(db: Database, settings: Settings) -> tuple[int, str]:
    data = part10(mr_dataset(patient_id=PATIENT_ID))
    ds = read_header(data)
    store_instance(db, settings.spool_dir, ds, data, Source.STOW, None)
    with db.session() as session:
        study = studies.get_study(session, str(ds.StudyInstanceUID))
        assert study is not None
        return study.id, study.study_uid


def _seed_comparison(gateway: Gateway, job_id: str, study_uid: str) -> str:
    """A succeeded comparison of the seeded job's study with an earlier study of the patient,
    with a follow-up JSON report and a secondary capture, and tracked lesions."""
    settings = gateway.settings
    _, prior_job = analysed(gateway.db, PATIENT_ID, new_uid(1), dt.date(2023, 1, 31))
    folder = job_result_dir(settings.results_dir, job_id) / "followup" / "seeded"
    sc = mr_dataset(study_uid=study_uid, patient_id=PATIENT_ID)
    _write(folder / "sc_1.dcm", part10(sc))
    _write(folder / "followup.json", b'{"activity": true}')
    records = [
        ResultRecord(
            kind=ResultKind.FOLLOWUP_SC,
            part=1,
            path=str((folder / "sc_1.dcm").relative_to(settings.results_dir)),
            media_type="application/dicom",
            study_uid=study_uid,
            series_uid=str(sc.SeriesInstanceUID),
            sop_instance_uid=str(sc.SOPInstanceUID),
            sop_class_uid=str(sc.SOPClassUID),
            modality="OT",
            series_number=9103,
        ),
        ResultRecord(
            kind=ResultKind.FOLLOWUP_JSON,
            path=str((folder / "followup.json").relative_to(settings.results_dir)),
            media_type="application/json",
        ),
    ]
    ids, _ = lesions.identities_from_report([(1, "2.25.71")], 0, lambda: "")
    followup = report(
        "1.2.3",
        study_uid,
        [change("2.25.71", "L1", ChangeCategory.ENLARGING, 1, [1]), change("2.25.72", "L2",
         ChangeCategory.NEW, 2)],
    )  # fmt: skip
    return succeeded_comparison(
        gateway.db, prior_job, job_id, followup, ids, {1: PriorLesion(0.2)}, records
    )


def seed(gateway: Gateway) -> dict[str, str]:
    """A succeeded job with results and a failed forward, a failed job, and a succeeded
    follow-up comparison of the succeeded job's study."""
    db, node = gateway.db, gateway.settings
    study_id, study_uid = _stored_study(db, node)
    failed_study_id, _ = _stored_study(db, node)
    with db.session() as session:
        job_id = jobs.create_job(session, study_id, "fuzz").id
        jobs.claim(session, job_id, "fuzz-worker")
        failed_id = jobs.create_job(session, failed_study_id, "fuzz").id
        jobs.claim(session, failed_id, "fuzz-worker")
        jobs.fail(session, failed_id, "no FLAIR series: the study has only T1W")
    records, series_uid, sop = _result_records(node, job_id, study_uid)
    outcome = JobOutcome(
        timings_s={"segment": 1.5},
        series=[{"role": "FLAIR", "series_uid": series_uid}],
        provider="CPUExecutionProvider",
        model="fuzz 1",
        lesion_count=2,
        lesion_volume_ml=1.25,
        brain_volume_ml=1100.0,
        results=records,
    )
    with db.session() as session:
        assert jobs.succeed(session, job_id, outcome)
        (fwd,) = forwards.ensure_forwards(session, job_id, ["dicom://PACS@127.0.0.1:1"])
        forwards.record_attempt(session, fwd.id, error="connection refused", final=True)
    comparison_id = _seed_comparison(gateway, job_id, study_uid)
    return {
        "job_id": job_id,
        "study": study_uid,
        "series": series_uid,
        "sop": sop,
        "patient_id": PATIENT_ID,
        "comparison_id": comparison_id,
        "name": "sc_1",
    }


@pytest.fixture
def seeded(gateway: Gateway) -> Any:
    """The seeded identifiers, visible to the path-parameter hook while the test runs."""
    _SEEDED.clear()
    _SEEDED.update(seed(gateway))
    yield dict(_SEEDED)
    _SEEDED.clear()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case: Any, gateway: Gateway, seeded: dict[str, str]) -> None:
    """No server error; status, content type, headers and body as documented."""
    response = case.call(app=gateway.app, headers=gateway.auth(Role.ADMIN))
    case.validate_response(response, checks=CHECKS)
