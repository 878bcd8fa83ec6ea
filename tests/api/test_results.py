"""Result downloads and QIDO-RS/WADO-RS of real SEG and SR made by the pipeline."""

from __future__ import annotations

import io
import json

import pydicom
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from mslesion.services.config import SHIPPED_MODELS_DIR
from mslesion.services.segmentation.catalogue import ModelSet
from mslesion.services.store.enums import Role
from tests.api.conftest import Gateway
from tests.api.make_jobs import make_job
from tests.api.seeding import PATIENT_ID, PhantomRun, record_phantom_job

pytestmark = pytest.mark.slow  # the pipeline runs once per session (~25 s)


@pytest.fixture
def job_id(gateway: Gateway, phantom_run: PhantomRun) -> str:
    return record_phantom_job(gateway.db, gateway.settings, phantom_run)


def test_downloads_have_the_right_media_types(
    client: TestClient, gateway: Gateway, job_id: str, phantom_run: PhantomRun
) -> None:
    reader = gateway.auth(Role.READER)
    base = f"/api/v1/jobs/{job_id}/results"
    seg = client.get(f"{base}/seg", headers=reader)
    sr = client.get(f"{base}/sr", headers=reader)
    report = client.get(f"{base}/json", headers=reader)
    png = client.get(f"{base}/png", headers=reader)

    assert seg.status_code == sr.status_code == report.status_code == png.status_code == 200
    assert seg.headers["content-type"] == sr.headers["content-type"] == "application/dicom"
    assert pydicom.dcmread(io.BytesIO(seg.content)).Modality == "SEG"
    assert pydicom.dcmread(io.BytesIO(sr.content)).Modality == "SR"
    assert report.headers["content-type"] == "application/json"
    assert json.loads(report.content)["lesion_count"] == phantom_run.result.report.lesion_count
    assert png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).format == "PNG"
    assert client.get(f"{base}/log", headers=reader).status_code == 422


def test_job_detail_of_a_succeeded_job(
    client: TestClient, gateway: Gateway, job_id: str, phantom_run: PhantomRun
) -> None:
    detail = client.get(f"/api/v1/jobs/{job_id}", headers=gateway.auth(Role.UPLOADER)).json()
    report = phantom_run.result.report
    assert detail["state"] == "succeeded" and detail["progress"] == 1.0
    assert detail["lesions"]["lesion_count"] == report.lesion_count
    assert detail["lesions"]["lesion_volume_ml"] == pytest.approx(report.total_lesion_volume_ml)
    chosen = ModelSet(SHIPPED_MODELS_DIR).choose(["flair", "t1", "t2"]).manifest
    assert {s["role"] for s in detail["series"]} == set(chosen.modalities)  # what the model used
    assert detail["provider"] == phantom_run.provider and detail["model"]
    assert set(detail["timings_s"]) and {r["kind"] for r in detail["results"]} == {
        "seg",
        "sr",
        "json",
        "png",
    }


def test_results_of_an_unfinished_job_are_404(client: TestClient, gateway: Gateway) -> None:
    job_id = make_job(gateway, "1.2.9")
    response = client.get(f"/api/v1/jobs/{job_id}/results/seg", headers=gateway.auth(Role.READER))
    assert response.status_code == 404
    assert "has not succeeded (state: queued)" in response.json()["detail"]


def test_qido_finds_the_seg_and_wado_returns_it(
    client: TestClient, gateway: Gateway, job_id: str, phantom_run: PhantomRun
) -> None:
    reader = gateway.auth(Role.READER)
    study = phantom_run.result.report.study_instance_uid
    by_keyword = client.get(
        f"/dicom-web/series?Modality=SEG&StudyInstanceUID={study}", headers=reader
    )
    by_tag = client.get(f"/dicom-web/studies/{study}/series?00080060=SEG", headers=reader)
    every = client.get(f"/dicom-web/studies/{study}/series", headers=reader)

    assert by_keyword.headers["content-type"] == "application/dicom+json"
    assert by_keyword.json() == by_tag.json() and len(by_keyword.json()) == 1
    assert {s["00080060"]["Value"][0] for s in every.json()} == {"SEG", "SR"}
    series = by_keyword.json()[0]["0020000E"]["Value"][0]

    instances = client.get(
        f"/dicom-web/studies/{study}/series/{series}/instances", headers=reader
    ).json()
    sop = instances[0]["00080018"]["Value"][0]
    metadata = client.get(
        f"/dicom-web/studies/{study}/series/{series}/instances/{sop}/metadata", headers=reader
    )
    assert metadata.status_code == 200
    assert metadata.json()[0]["00080060"]["Value"] == ["SEG"]
    assert "7FE00010" not in metadata.json()[0]

    wado = client.get(
        f"/dicom-web/studies/{study}/series/{series}/instances/{sop}",
        headers={**reader, "Accept": 'multipart/related; type="application/dicom"'},
    )
    assert wado.status_code == 200
    assert wado.headers["content-type"].startswith('multipart/related; type="application/dicom"')
    seg_bytes = (gateway.settings.results_dir / job_id / "lesions_seg.dcm").read_bytes()
    assert seg_bytes in wado.content

    refused = client.get(
        f"/dicom-web/studies/{study}/series/{series}", headers={**reader, "Accept": "image/jpeg"}
    )
    assert refused.status_code == 406
    assert client.get(f"/dicom-web/studies/{study}/series/1.2.3", headers=reader).status_code == 404
    assert client.get("/dicom-web/studies/not.a.uid/series", headers=reader).status_code == 422


def test_lesion_load_from_a_real_result(
    client: TestClient, gateway: Gateway, job_id: str, phantom_run: PhantomRun
) -> None:
    response = client.get(
        f"/api/v1/patients/{PATIENT_ID}/lesion-load", headers=gateway.auth(Role.READER)
    )
    (study,) = response.json()["studies"]
    assert study["job_id"] == job_id and study["change_since_previous"] is None
    assert study["lesion_volume_ml"] == pytest.approx(
        phantom_run.result.report.total_lesion_volume_ml
    )
