"""STOW-RS through the ASGI app: status codes, PS3.18 response content, jobs created."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pydicom
from fastapi.testclient import TestClient
from pydicom.uid import CTImageStorage

from mslesion.services.ingest import DicomStatus
from mslesion.services.store.enums import Role, StudyState
from mslesion.services.store.repositories import jobs, studies
from tests.api.conftest import Gateway
from tests.api.stow_body import BOUNDARY, CONTENT_TYPE, multipart

REFERENCED, FAILED = "00081199", "00081198"
FAILURE_REASON, SOP_INSTANCE, RETRIEVE_URL = "00081197", "00081155", "00081190"


def stow(
    client: TestClient,
    gateway: Gateway,
    body: bytes | Iterator[bytes],
    url: str = "/dicom-web/studies",
    content_type: str = CONTENT_TYPE,
) -> httpx.Response:
    headers = {**gateway.auth(Role.UPLOADER), "Content-Type": content_type}
    return client.post(url, content=body, headers=headers)


def items(answer: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    return list(answer.get(tag, {}).get("Value", []))


def test_all_stored_is_200_with_referenced_sops_and_one_job(
    client: TestClient, gateway: Gateway, mr_series: list[Path]
) -> None:
    files = mr_series[:5]
    response = stow(client, gateway, multipart([f.read_bytes() for f in files]))

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/dicom+json"
    answer = response.json()
    referenced = items(answer, REFERENCED)
    sops = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files}
    assert {i[SOP_INSTANCE]["Value"][0] for i in referenced} == sops
    assert all("/dicom-web/studies/" in i[RETRIEVE_URL]["Value"][0] for i in referenced)
    assert FAILED not in answer
    job_ids = response.headers["X-Mslesion-Jobs"].split(",")
    assert len(job_ids) == 1 and gateway.dispatcher.jobs == job_ids
    study_uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    with gateway.db.session() as session:
        study = studies.get_study(session, study_uid)
        assert study is not None
        assert study.instance_count == 5 and study.state == StudyState.COMPLETE
        job = jobs.get_job(session, job_ids[0])
        assert job is not None and job.created_by == "uploader-key"


def test_non_dicom_part_fails_while_the_others_are_stored(
    client: TestClient, gateway: Gateway, mr_series: list[Path]
) -> None:
    body = multipart([mr_series[0].read_bytes(), b"this is not DICOM", mr_series[1].read_bytes()])
    response = stow(client, gateway, body)

    assert response.status_code == 202, response.text
    answer = response.json()
    assert len(items(answer, REFERENCED)) == 2
    (failed,) = items(answer, FAILED)
    assert failed[FAILURE_REASON]["Value"] == [DicomStatus.CANNOT_UNDERSTAND]
    with gateway.db.session() as session:
        assert studies.instance_exists(
            session, str(pydicom.dcmread(mr_series[1], stop_before_pixels=True).SOPInstanceUID)
        )


def test_all_failed_is_409_and_no_job(
    client: TestClient, gateway: Gateway, mr_series: list[Path]
) -> None:
    ct = pydicom.dcmread(mr_series[2])
    ct.SOPClassUID = ct.file_meta.MediaStorageSOPClassUID = CTImageStorage
    path = mr_series[2].parent.parent / "ct.dcm"
    ct.save_as(path)
    response = stow(client, gateway, multipart([path.read_bytes(), b"junk"]))

    assert response.status_code == 409, response.text
    reasons = [i[FAILURE_REASON]["Value"][0] for i in items(response.json(), FAILED)]
    assert reasons == [DicomStatus.SOP_CLASS_NOT_SUPPORTED, DicomStatus.CANNOT_UNDERSTAND]
    known = items(response.json(), FAILED)[0]
    assert known[SOP_INSTANCE]["Value"] == [str(ct.SOPInstanceUID)]
    assert gateway.dispatcher.jobs == []


def test_instance_of_another_study_than_the_url_fails_with_a900(
    client: TestClient, gateway: Gateway, mr_series: list[Path]
) -> None:
    body = multipart([mr_series[3].read_bytes()])
    response = stow(client, gateway, body, url="/dicom-web/studies/1.2.3.4")

    assert response.status_code == 409
    (failed,) = items(response.json(), FAILED)
    assert failed[FAILURE_REASON]["Value"] == [DicomStatus.DATASET_DOES_NOT_MATCH]
    assert response.json()[RETRIEVE_URL]["Value"][0].endswith("/dicom-web/studies/1.2.3.4")


def test_unquoted_type_and_boundary_and_a_resent_duplicate(
    client: TestClient, gateway: Gateway, mr_series: list[Path]
) -> None:
    body = multipart([mr_series[4].read_bytes()])
    plain = f"multipart/related; type=application/dicom; boundary={BOUNDARY}"
    first = stow(client, gateway, body, content_type=plain)
    again = stow(client, gateway, body, content_type=plain)

    assert first.status_code == again.status_code == 200
    assert "X-Mslesion-Jobs" in first.headers
    assert "X-Mslesion-Jobs" not in again.headers  # nothing new: no second job
    assert len(gateway.dispatcher.jobs) == 1


def test_chunked_body_in_small_pieces(
    client: TestClient, gateway: Gateway, mr_series: list[Path]
) -> None:
    body = multipart([f.read_bytes() for f in mr_series[5:8]])

    def pieces() -> Iterator[bytes]:
        for at in range(0, len(body), 997):
            yield body[at : at + 997]

    response = stow(client, gateway, pieces())
    assert response.status_code == 200, response.text
    assert len(items(response.json(), REFERENCED)) == 3


def test_wrong_media_type_is_415(client: TestClient, gateway: Gateway) -> None:
    for content_type in (
        "application/json",
        f'multipart/related; type="application/dicom+json"; boundary={BOUNDARY}',
    ):
        response = stow(client, gateway, b"{}", content_type=content_type)
        assert response.status_code == 415
        assert "application/dicom" in response.json()["detail"]


def test_malformed_multipart_is_400(client: TestClient, gateway: Gateway) -> None:
    no_boundary = stow(
        client, gateway, b"x", content_type='multipart/related; type="application/dicom"'
    )
    no_parts = stow(client, gateway, b"no delimiter anywhere")
    empty = stow(client, gateway, f"--{BOUNDARY}--\r\n".encode())
    for response in (no_boundary, no_parts, empty):
        assert response.status_code == 400, response.text
        assert response.json()["detail"]
    assert "boundary" in no_boundary.json()["detail"]


def test_body_over_the_limit_is_413(
    client: TestClient, gateway: Gateway, mr_series: list[Path]
) -> None:
    gateway.settings.max_upload_bytes = 20_000
    body = multipart([f.read_bytes() for f in mr_series[10:14]])
    assert len(body) > 20_000
    declared = stow(client, gateway, body)
    chunked = stow(client, gateway, iter([body[:15_000], body[15_000:]]))

    for response in (declared, chunked):
        assert response.status_code == 413
        assert "20000 bytes" in response.json()["detail"]
