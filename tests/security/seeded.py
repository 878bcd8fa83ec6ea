"""A gateway holding one succeeded job with real results, and the values that fill each GET
route's path parameters."""

from __future__ import annotations

import datetime as dt
import re

from mslesion.services.store.enums import ResultKind
from mslesion.services.store.repositories import results
from mslesion.services.store.repositories.jobs import ResultRecord
from tests.api.conftest import Gateway
from tests.api.seeding import PATIENT_ID, PhantomRun, record_phantom_job
from tests.services.store.followup_rows import analysed, report, succeeded_comparison


def seed(gateway: Gateway, run: PhantomRun) -> dict[str, str]:
    """Record the phantom job; answer {path parameter name: value} for its results."""
    job_id = record_phantom_job(gateway.db, gateway.settings, run)
    comparison_id = _seed_comparison(gateway)
    with gateway.db.session() as session:
        seg = results.result_file(session, job_id, ResultKind.SEG)
        assert seg is not None and seg.study_uid and seg.series_uid and seg.sop_instance_uid
        return {
            "job_id": job_id,
            "kind": "seg",
            "study": seg.study_uid,
            "series": seg.series_uid,
            "sop": seg.sop_instance_uid,
            "patient_id": PATIENT_ID,
            "comparison_id": comparison_id,
            "name": "json",
        }


def _seed_comparison(gateway: Gateway) -> str:
    """Two more analysed studies of the patient, compared, with the comparison's JSON."""
    prior_uid, current_uid = "2.25.8101", "2.25.8102"
    _, prior_job = analysed(gateway.db, PATIENT_ID, prior_uid, dt.date(2019, 1, 1))
    _, current_job = analysed(gateway.db, PATIENT_ID, current_uid, dt.date(2020, 1, 1))
    folder = gateway.settings.results_dir / current_job / "followup"
    folder.mkdir(parents=True)
    (folder / "followup.json").write_text('{"activity": false}')
    record = ResultRecord(
        kind=ResultKind.FOLLOWUP_JSON,
        path=str((folder / "followup.json").relative_to(gateway.settings.results_dir)),
        media_type="application/json",
    )
    followup = report(prior_uid, current_uid, [])
    return succeeded_comparison(gateway.db, prior_job, current_job, followup, {}, {}, [record])


def fill(template: str, values: dict[str, str]) -> str:
    """``/api/v1/jobs/{job_id}`` with its parameters replaced by ``values``."""
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)
