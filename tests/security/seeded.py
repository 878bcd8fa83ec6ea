"""A gateway holding one succeeded job with real results, and the values that fill each GET
route's path parameters."""

from __future__ import annotations

import re

from mslesion.services.store.enums import ResultKind
from mslesion.services.store.repositories import results
from tests.api.conftest import Gateway
from tests.api.seeding import PATIENT_ID, PhantomRun, record_phantom_job


def seed(gateway: Gateway, run: PhantomRun) -> dict[str, str]:
    """Record the phantom job; answer {path parameter name: value} for its results."""
    job_id = record_phantom_job(gateway.db, gateway.settings, run)
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
        }


def fill(template: str, values: dict[str, str]) -> str:
    """``/api/v1/jobs/{job_id}`` with its parameters replaced by ``values``."""
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)
