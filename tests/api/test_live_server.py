"""Real clients against a real uvicorn server: dicomweb-client (chunked STOW, QIDO, WADO)
and curl."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from dicomweb_client import DICOMwebClient

from mslesion.services.store.enums import Role
from mslesion.services.store.repositories import studies
from tests.api.conftest import Gateway
from tests.api.seeding import PhantomRun, record_phantom_job
from tests.api.stow_body import BOUNDARY, multipart


def client_for(
    live_url: str, gateway: Gateway, role: Role, chunk_size: int = 10**6
) -> DICOMwebClient:
    return DICOMwebClient(
        f"{live_url}/dicom-web", headers=gateway.auth(role), chunk_size=chunk_size
    )


def test_dicomweb_client_stores_with_a_chunked_body(
    live_url: str, gateway: Gateway, mr_series: list[Path]
) -> None:
    datasets = [pydicom.dcmread(f) for f in mr_series]
    # A chunk smaller than the body makes dicomweb-client send Transfer-Encoding: chunked.
    client = client_for(live_url, gateway, Role.UPLOADER, chunk_size=16 * 1024)

    answer = client.store_instances(datasets)

    stored = {str(i.ReferencedSOPInstanceUID) for i in answer.ReferencedSOPSequence}
    assert stored == {str(ds.SOPInstanceUID) for ds in datasets}
    assert "FailedSOPSequence" not in answer
    with gateway.db.session() as session:
        study = studies.get_study(session, str(datasets[0].StudyInstanceUID))
        assert study is not None and study.instance_count == len(datasets)
    assert len(gateway.dispatcher.jobs) == 1


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_stores_with_unquoted_type(
    live_url: str, gateway: Gateway, mr_series: list[Path], tmp_path: Path
) -> None:
    body = tmp_path / "body"
    body.write_bytes(multipart([mr_series[0].read_bytes(), b"not dicom"]))
    key = gateway.keys[Role.UPLOADER]
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "-X",
            "POST",
            "-H",
            f"Content-Type: multipart/related; type=application/dicom; boundary={BOUNDARY}",
            "-H",
            f"X-API-Key: {key}",
            "--data-binary",
            f"@{body}",
            "-w",
            "\n%{http_code}",
            f"{live_url}/dicom-web/studies",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    text, status = result.stdout.rsplit("\n", 1)
    assert status == "202"
    answer = json.loads(text)
    assert len(answer["00081199"]["Value"]) == 1
    assert answer["00081198"]["Value"][0]["00081197"]["Value"] == [0xC000]


@pytest.mark.slow
def test_dicomweb_client_finds_and_retrieves_the_seg(
    live_url: str, gateway: Gateway, phantom_run: PhantomRun
) -> None:
    record_phantom_job(gateway.db, gateway.settings, phantom_run)
    study = phantom_run.result.report.study_instance_uid
    client = client_for(live_url, gateway, Role.READER)

    (found,) = client.search_for_series(study, search_filters={"Modality": "SEG"})
    series = found["0020000E"]["Value"][0]
    (instance,) = client.search_for_instances(study, series)
    sop = instance["00080018"]["Value"][0]
    seg = client.retrieve_instance(study, series, sop)
    (same,) = client.retrieve_series(study, series)
    (meta,) = client.retrieve_series_metadata(study, series)

    assert seg.Modality == "SEG" and seg.SOPInstanceUID == sop
    assert seg.SegmentSequence[0].SegmentLabel == "MS lesion"
    assert same.SOPInstanceUID == sop and len(seg.PixelData) > 0
    assert meta["00080018"]["Value"] == [sop]
