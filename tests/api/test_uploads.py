"""Zip upload for scripts: stored instances, per-file failures, job created, limits."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from fastapi.testclient import TestClient

from mslesion.services.store.enums import Role
from tests.api.conftest import Gateway


def zipped(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def upload(
    client: TestClient, gateway: Gateway, body: bytes, content_type: str = "application/zip"
) -> object:
    headers = {**gateway.auth(Role.UPLOADER), "Content-Type": content_type}
    return client.post("/api/v1/uploads", content=body, headers=headers)


def test_zip_is_stored_and_gets_a_job_with_per_file_failures(
    client: TestClient, gateway: Gateway, mr_series: list[Path]
) -> None:
    files = {f"study/{p.name}": p.read_bytes() for p in mr_series[:6]}
    files["study/README.txt"] = b"exported by a script"
    response = upload(client, gateway, zipped(files))

    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["stored"], body["duplicates"]) == (6, 0)
    (job,) = body["jobs"]
    assert gateway.dispatcher.jobs == [job["job_id"]]
    (failure,) = body["failures"]
    assert failure["file"] == "study/README.txt" and failure["status"] == 0xC000
    assert "DICOM" in failure["reason"]


def test_octet_stream_accepted_and_duplicates_counted(
    client: TestClient, gateway: Gateway, mr_series: list[Path]
) -> None:
    body = zipped({p.name: p.read_bytes() for p in mr_series[:2]})
    upload(client, gateway, body)
    again = upload(client, gateway, body, "application/octet-stream")
    assert again.status_code == 202
    assert (again.json()["stored"], again.json()["duplicates"], again.json()["jobs"]) == (0, 2, [])


def test_upload_over_the_size_limit_is_413(
    client: TestClient, gateway: Gateway, mr_series: list[Path]
) -> None:
    gateway.settings.max_upload_bytes = 10_000
    body = zipped({p.name: p.read_bytes() for p in mr_series[:4]})
    assert len(body) > 10_000
    declared = upload(client, gateway, body)
    chunked = client.post(
        "/api/v1/uploads",
        content=iter([body[:6000], body[6000:]]),
        headers={**gateway.auth(Role.UPLOADER), "Content-Type": "application/zip"},
    )
    for response in (declared, chunked):
        assert response.status_code == 413
        assert "10000 bytes" in response.json()["detail"]
    assert gateway.dispatcher.jobs == []


def test_wrong_type_not_a_zip_and_nothing_dicom(client: TestClient, gateway: Gateway) -> None:
    wrong_type = upload(client, gateway, b"PK", "text/plain")
    not_zip = upload(client, gateway, b"definitely not a zip archive")
    no_dicom = upload(client, gateway, zipped({"a.txt": b"hello"}))

    assert wrong_type.status_code == 415
    assert not_zip.status_code == 400 and "zip" in not_zip.json()["detail"]
    assert no_dicom.status_code == 422
    assert no_dicom.json()["detail"]["failures"][0]["file"] == "a.txt"
