"""`mslesion serve` on one machine: DICOMweb in, lesion-load history and the SEG out.

One process (SQLite in a temporary data dir, in-process worker, no broker). The two time
points of the open-ms longitudinal patient01 go in by STOW-RS with the dicomweb-client package
(chunked bodies); the lesion-load history must list both in date order with the changes; the
SEG must be found by QIDO-RS and fetched by WADO-RS; and a STOW-RS body built by hand and sent
by curl must be accepted too.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import highdicom as hd
import httpx
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient

from mslesion.devtools.dicom_writer import StudyInfo
from tests.conftest import free_port
from tests.dicom_tools import require_tool
from tests.e2e.processes import (
    Child,
    lines_containing,
    mslesion_command,
    node_env,
    port_open,
    start_child,
    wait_for,
)
from tests.e2e.studies import Phi, read_study, write_time_point
from tests.services.dicom.synthetic import write_series

pytestmark = pytest.mark.slow

JOB_TIMEOUT_S = 360.0  # per job; ~30 s each on this machine
DATES = ("20120301", "20130415")  # study1 then study2 of patient01


@dataclass
class Server:
    """A running ``mslesion serve`` and how to reach it."""

    child: Child
    url: str
    admin_key: str

    def headers(self) -> dict[str, str]:
        """Authorization header of the bootstrap admin key."""
        return {"Authorization": f"Bearer {self.admin_key}"}

    def get(self, path: str) -> httpx.Response:
        """GET a gateway path with the admin key."""
        return httpx.get(self.url + path, headers=self.headers(), timeout=30)

    def dicomweb(self) -> DICOMwebClient:
        """A DICOMweb client on the gateway's /dicom-web, authorised by the admin key."""
        return DICOMwebClient(url=f"{self.url}/dicom-web", headers=self.headers())


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """``mslesion serve`` with its data (and SQLite database) in tmp_path."""
    http_port = free_port()
    admin_key = f"e2e-{uuid.uuid4().hex}"
    env = node_env(
        {
            "MSLESION_DATA_DIR": str(tmp_path / "node"),
            "MSLESION_PROVIDER": "cpu",
            "MSLESION_HTTP_HOST": "127.0.0.1",
            "MSLESION_HTTP_PORT": str(http_port),
            "MSLESION_DICOM_HOST": "127.0.0.1",
            "MSLESION_DICOM_PORT": str(free_port()),
            "MSLESION_BOOTSTRAP_ADMIN_KEY": admin_key,
        }
    )
    child = start_child("serve", [*mslesion_command(), "serve"], env, tmp_path / "logs")
    try:
        wait_for("mslesion serve", lambda: port_open(http_port), 120, [child])
        yield Server(child, f"http://127.0.0.1:{http_port}", admin_key)
    finally:
        child.stop()


def _job_of_study(server: Server, study_uid: str) -> dict[str, Any] | None:
    response = server.get("/api/v1/jobs?limit=500")
    assert response.status_code == 200, response.text
    for item in response.json()["items"]:
        if item["study_uid"] == study_uid and item["state"] in ("succeeded", "failed"):
            detail = server.get(f"/api/v1/jobs/{item['id']}")
            assert detail.status_code == 200, detail.text
            return dict(detail.json())
    return None


def _finished_job(server: Server, study_uid: str) -> dict[str, Any]:
    job = wait_for(
        f"the job of study {study_uid}",
        lambda: _job_of_study(server, study_uid),
        JOB_TIMEOUT_S,
        [server.child],
        interval_s=2.0,
    )
    assert job["state"] == "succeeded", job
    return job


def _stow_body(dicom_file: Path, boundary: str) -> bytes:
    """A one-part ``multipart/related; type="application/dicom"`` body (PS3.18 10.5)."""
    return b"".join(
        [
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode(),
            dicom_file.read_bytes(),
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )


def test_two_time_points_by_stow_give_history_and_seg(
    server: Server, shared_data: Path, tmp_path: Path
) -> None:
    phi = Phi()
    client = server.dicomweb()
    studies: list[StudyInfo] = []
    for time_point, date in enumerate(DATES, start=1):
        folder = tmp_path / f"study{time_point}"
        studies.append(write_time_point(shared_data, time_point, folder, phi, study_date=date))
        stored = client.store_instances(read_study(folder))
        assert "FailedSOPSequence" not in stored, stored
        assert len(stored.ReferencedSOPSequence) == len(list(folder.rglob("*.dcm")))

    jobs = [_finished_job(server, study.study_uid) for study in studies]
    volumes = [job["lesions"]["lesion_volume_ml"] for job in jobs]

    # Lesion-load history: both studies, oldest first, changes consistent with the volumes.
    response = server.get(f"/api/v1/patients/{phi.patient_id}/lesion-load")
    assert response.status_code == 200, response.text
    history = response.json()
    assert history["patient_id"] == phi.patient_id
    first, second = history["studies"]
    assert [first["study_uid"], second["study_uid"]] == [s.study_uid for s in studies]
    assert [first["study_date"], second["study_date"]] == ["2012-03-01", "2013-04-15"]
    assert [first["lesion_volume_ml"], second["lesion_volume_ml"]] == pytest.approx(
        volumes, abs=0.01
    )
    assert first["change_since_previous"] is None and first["change_since_first"] is None
    delta = volumes[1] - volumes[0]
    for change in (second["change_since_previous"], second["change_since_first"]):
        assert change["volume_ml"] == pytest.approx(delta, abs=0.02)
        assert change["percent"] == pytest.approx(100 * delta / volumes[0], abs=0.1)

    chart = server.get(f"/api/v1/patients/{phi.patient_id}/lesion-load.png")
    assert chart.status_code == 200
    assert chart.headers["content-type"] == "image/png"
    assert chart.content.startswith(b"\x89PNG\r\n\x1a\n")

    # QIDO-RS finds the SEG of the first study, WADO-RS returns it, highdicom reads it.
    study_uid = studies[0].study_uid
    (seg_series,) = client.search_for_series(
        study_instance_uid=study_uid, search_filters={"Modality": "SEG"}
    )
    series_uid = seg_series["0020000E"]["Value"][0]
    (seg_instance,) = client.search_for_instances(
        study_instance_uid=study_uid, series_instance_uid=series_uid
    )
    sop_uid = seg_instance["00080018"]["Value"][0]
    seg = hd.seg.Segmentation.from_dataset(client.retrieve_instance(study_uid, series_uid, sop_uid))
    assert seg.StudyInstanceUID == study_uid
    assert seg.get_segment_description(1).segment_label == "MS lesion"

    leaks = lines_containing([server.child.log_path], phi.needles())
    assert not leaks, "PHI in the server's log:\n" + "\n".join(leaks[:20])


def test_stow_by_curl(server: Server, tmp_path: Path) -> None:
    (dicom_file, *_) = write_series(
        tmp_path / "series", StudyInfo(patient_id="CURL01", study_date="20200102")
    )
    boundary = f"mslesion-{uuid.uuid4().hex}"
    body = tmp_path / "stow.body"
    body.write_bytes(_stow_body(dicom_file, boundary))
    out = tmp_path / "stow.json"
    result = subprocess.run(
        [
            require_tool("curl"), "--silent", "--show-error",
            "--output", str(out), "--write-out", "%{http_code}",
            "--header", f"Authorization: Bearer {server.admin_key}",
            "--header", f'Content-Type: multipart/related; type="application/dicom"; '
                        f"boundary={boundary}",
            "--header", "Accept: application/dicom+json",
            "--data-binary", f"@{body}",
            f"{server.url}/dicom-web/studies",
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "200", out.read_text()
    response = pydicom.Dataset.from_json(json.loads(out.read_text()))
    assert "FailedSOPSequence" not in response
    sop_uid = pydicom.dcmread(dicom_file).SOPInstanceUID
    assert [item.ReferencedSOPInstanceUID for item in response.ReferencedSOPSequence] == [sop_uid]
