"""The bad-input corpus through the gateway: STOW-RS bodies, single instances, zip uploads,
and requests mixing patients.

Each case gets its HTTP status and, where the request is processed part by part, the
outcome of every part in the PS3.18 terms: a ReferencedSOPSequence item when stored, a
FailedSOPSequence item whose FailureReason is the ingest's DICOM status when refused. A
refused request answers a JSON error whose ``detail`` names the problem. After every case
the gateway still stores a valid instance: one bad request never stops the service.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from mslesion.services.dicom.reader import ZipLimits
from mslesion.services.ingest import DicomStatus
from mslesion.services.store.enums import Role
from mslesion.services.store.repositories import studies
from tests.api.conftest import Gateway
from tests.corpus.base import part10, valid_mr_bytes
from tests.corpus.dicom_cases import DicomCase, dicom_cases
from tests.corpus.expected import Expected, Outcome
from tests.corpus.multipart import (
    DICOM_HEADERS,
    MultipartCase,
    multipart_body,
    multipart_cases,
    stow_content_type,
)
from tests.corpus.series import one_study_two_patients, several_patients
from tests.corpus.zips import ZipCase, zip_cases

REFERENCED, FAILED = "00081199", "00081198"
FAILURE_REASON, SOP_INSTANCE = "00081197", "00081155"

# Where the gateway's answer to a zip case differs from ZipCase.http_status, and why.
ZIP_STATUS = {
    "zip-valid-study": 202,  # an accepted upload: instances stored, a job queued
    # A readable archive holding no DICOM (here a nested zip, never expanded): the request
    # is well-formed but nothing in it can be processed.
    "zip-nested-bomb-not-expanded": 422,
}
# The gateway's wording where it differs from the reader's (ZipCase.error).
ZIP_DETAIL = {
    "zip-nested-bomb-not-expanded": r"no DICOM instance.*inner/bomb\.zip",
    "zip-member-size-lies": r"damaged",
    "zip-truncated-archive": r"not a readable zip archive",
}


def _param(case: MultipartCase | DicomCase) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=case.gap)] if case.gap else []
    return pytest.param(case, id=case.name, marks=marks)


def stow(client: TestClient, gateway: Gateway, content_type: str, body: bytes) -> httpx.Response:
    """POST a STOW-RS request as the uploader."""
    headers = {**gateway.auth(Role.UPLOADER), "Content-Type": content_type}
    return client.post("/dicom-web/studies", content=body, headers=headers)


def sequence(answer: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    """The items of a sequence of a DICOM JSON answer (none when absent)."""
    return list(answer.get(tag, {}).get("Value", []))


def assert_parts(response: httpx.Response, expected: tuple[Expected, ...]) -> list[str]:
    """Stored parts are referenced, refused ones failed with their status, in order.

    Returns the SOP Instance UIDs the answer references.
    """
    answer = response.json()
    referenced, failed = sequence(answer, REFERENCED), sequence(answer, FAILED)
    stored = [e for e in expected if e.outcome is Outcome.STORED]
    refused = [int(e.status) for e in expected if e.outcome is Outcome.REFUSED and e.status]
    assert len(referenced) == len(stored), answer
    assert [item[FAILURE_REASON]["Value"][0] for item in failed] == refused, answer
    return [item[SOP_INSTANCE]["Value"][0] for item in referenced]


def assert_error(response: httpx.Response, pattern: str = r"\w") -> None:
    """A JSON error whose detail names the problem."""
    assert response.headers["content-type"].startswith("application/json"), response.text
    detail = response.json()["detail"]
    text = detail if isinstance(detail, str) else str(detail)
    assert re.search(pattern, text, re.IGNORECASE), text


def assert_still_serving(client: TestClient, gateway: Gateway) -> None:
    """A valid STOW-RS request after the case is stored as usual."""
    body = multipart_body([(DICOM_HEADERS, valid_mr_bytes())])
    response = stow(client, gateway, stow_content_type(), body)
    assert response.status_code == 200, response.text
    assert len(sequence(response.json(), REFERENCED)) == 1


def assert_stored(gateway: Gateway, sop_uids: list[str]) -> None:
    with gateway.db.session() as session:
        assert all(studies.instance_exists(session, uid) for uid in sop_uids)


# --- STOW-RS bodies -------------------------------------------------------------------------


@pytest.mark.parametrize("case", [_param(c) for c in multipart_cases()])
def test_stow_body(case: MultipartCase, client: TestClient, gateway: Gateway) -> None:
    response = stow(client, gateway, case.content_type, case.body)

    assert response.status_code == case.expected_status, response.text
    if case.parts is not None:
        assert response.headers["content-type"] == "application/dicom+json"
        assert_stored(gateway, assert_parts(response, case.parts))
    elif case.expected_status >= 400:
        assert_error(response)
    assert_still_serving(client, gateway)


# --- single instances through STOW-RS -------------------------------------------------------


@pytest.mark.parametrize("case", [_param(c) for c in dicom_cases()])
def test_stow_instance(case: DicomCase, client: TestClient, gateway: Gateway) -> None:
    missing = [tool for tool in case.requires if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    body = multipart_body([(DICOM_HEADERS, case.data())])
    response = stow(client, gateway, stow_content_type(), body)

    stored = case.expected.outcome is Outcome.STORED
    assert response.status_code == (200 if stored else 409), response.text
    assert_stored(gateway, assert_parts(response, (case.expected,)))
    assert_still_serving(client, gateway)


# --- several patients -----------------------------------------------------------------------


def test_several_patients_in_one_request_become_separate_studies(
    client: TestClient, gateway: Gateway
) -> None:
    datasets = several_patients()
    body = multipart_body([(DICOM_HEADERS, part10(ds)) for ds in datasets])
    response = stow(client, gateway, stow_content_type(), body)

    assert response.status_code == 200, response.text
    assert len(sequence(response.json(), REFERENCED)) == len(datasets)
    study_uids = {str(ds.StudyInstanceUID) for ds in datasets}
    with gateway.db.session() as session:
        found = [studies.get_study(session, uid) for uid in study_uids]
        patients = {s.patient_id: s.instance_count for s in found if s is not None}
    assert patients == {"CORPUS-A": 2, "CORPUS-B": 2}
    assert len(response.headers["X-Mslesion-Jobs"].split(",")) == 2  # a job per study
    assert len(gateway.dispatcher.jobs) == 2


def test_one_study_naming_two_patients_refuses_the_contradiction(
    client: TestClient, gateway: Gateway
) -> None:
    first, second = one_study_two_patients()
    body = multipart_body([(DICOM_HEADERS, part10(first)), (DICOM_HEADERS, part10(second))])
    response = stow(client, gateway, stow_content_type(), body)

    assert response.status_code == 202, response.text
    (failed,) = sequence(response.json(), FAILED)
    assert failed[FAILURE_REASON]["Value"] == [DicomStatus.DATASET_DOES_NOT_MATCH]
    assert failed[SOP_INSTANCE]["Value"] == [str(second.SOPInstanceUID)]
    with gateway.db.session() as session:
        study = studies.get_study(session, str(first.StudyInstanceUID))
        assert study is not None
        assert (study.patient_id, study.instance_count) == ("CORPUS-A", 1)
    assert_still_serving(client, gateway)


# --- zip uploads ----------------------------------------------------------------------------


def _limits(gateway: Gateway, limits: ZipLimits | None) -> None:
    limits = limits or ZipLimits()
    gateway.settings.max_zip_members = limits.max_members
    gateway.settings.max_zip_expanded_bytes = limits.max_total_bytes
    gateway.settings.max_zip_member_bytes = limits.max_member_bytes


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in zip_cases()])
def test_zip_upload(case: ZipCase, client: TestClient, gateway: Gateway, tmp_path: Path) -> None:
    _limits(gateway, case.limits)
    archive = case.build(tmp_path)
    headers = {**gateway.auth(Role.UPLOADER), "Content-Type": "application/zip"}
    response = client.post("/api/v1/uploads", content=archive.read_bytes(), headers=headers)

    assert response.status_code == ZIP_STATUS.get(case.name, case.http_status), response.text
    if case.error is None:
        body = response.json()
        assert (body["stored"], len(body["jobs"])) == (3, 1)
        assert [f["file"] for f in body["failures"]] == ["EXPORT/README.TXT"]
    else:
        assert_error(response, ZIP_DETAIL.get(case.name, case.error))
        assert gateway.dispatcher.jobs == []
    assert_still_serving(client, gateway)
