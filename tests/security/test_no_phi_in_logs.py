"""No patient data in any log line: a whole node (gateway, listener, monitor, in-process
worker) runs in this process with every logger at DEBUG, pynetdicom's included, and with
uvicorn's own handlers captured too. A study with distinctive identifying attributes goes in
by C-STORE and by STOW-RS, is segmented, read back through every kind of read, and prodded
with bad requests; no captured line may contain any of its identifying values."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from pydicom.uid import generate_uid

from mslesion.devtools.dicom_writer import StudyInfo, write_study
from mslesion.devtools.phantom import make_phantom, write_phantom
from mslesion.node import Node, Parts
from mslesion.services.config import Settings
from mslesion.services.logpolicy import PINNED_TO_WARNING, redact_path
from tests.api.seeding import PHANTOM_SHAPE
from tests.api.stow_body import CONTENT_TYPE, multipart
from tests.e2e.processes import storescu
from tests.services.listener.instances import instance

pytestmark = pytest.mark.slow

NAME = "VELDTRUSK^ORMELINDA^Q"
PATIENT_ID = "PHISEC-90317"
BIRTH_DATE = "19640817"
ACCESSION = "ACC-SEC-42868"
OTHER_ID = "PHISEC-CONFLICT-5521"  # a contradicting patient ID sent for the same study
UNKNOWN_ID = "PHISEC-NOSUCH-1177"  # asked for, never stored
NEEDLES = (
    PATIENT_ID, "VELDTRUSK", "ORMELINDA", BIRTH_DATE, "1964-08-17", ACCESSION,
    OTHER_ID, UNKNOWN_ID,
)  # fmt: skip
LOGGERS_WITH_OWN_HANDLERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
JOB_TIMEOUT_S = 600.0


class Capture(logging.Handler):
    """Keeps every record, formatted with its arguments and any traceback."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.extend(self.format(record).splitlines())


@pytest.fixture
def capture() -> Iterator[Capture]:
    """Every logger at DEBUG into one capture handler (restored afterwards)."""
    handler = Capture()
    root = logging.getLogger()
    saved: list[tuple[logging.Logger, int]] = [(root, root.level)]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    # An operator's "debug everything"; the node pins what would leak (services/logpolicy.py).
    for name in ("pynetdicom", "pydicom"):
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    for logger, level in saved:
        logger.setLevel(level)
    for name in LOGGERS_WITH_OWN_HANDLERS:
        logging.getLogger(name).removeHandler(handler)
    for name in PINNED_TO_WARNING:
        logging.getLogger(name).setLevel(logging.NOTSET)


@dataclass
class Running:
    node: Node
    url: str
    admin: dict[str, str]


@pytest.fixture
def node(node_settings: Settings, capture: Capture) -> Iterator[Running]:
    """``mslesion serve`` in this process: gateway, listener, monitor, in-process worker."""
    n = Node(node_settings, Parts())
    n.start(migrate=False, create_admin_key=True)
    # uvicorn configures its loggers with their own handlers and no propagation: listen there.
    for name in LOGGERS_WITH_OWN_HANDLERS:
        logger = logging.getLogger(name)
        logger.addHandler(capture)
        logger.setLevel(logging.DEBUG)
    assert n.admin_key
    yield Running(n, f"http://127.0.0.1:{n.http_port}", {"X-API-Key": n.admin_key})
    n.stop()


def _phi_study(out: Path) -> Path:
    nifti = write_phantom(make_phantom(shape=PHANTOM_SHAPE, seed=5), out / "nifti")
    info = StudyInfo(
        patient_id=PATIENT_ID,
        patient_name=NAME,
        patient_birth_date=BIRTH_DATE,
        patient_sex="F",
        accession_number=ACCESSION,
        study_date="20240301",
    )
    study = out / "dicom"
    write_study({"FLAIR": nifti["FLAIR"], "T1W": nifti["T1"], "T2W": nifti["T2"]}, study, info)
    return study


def _stow_parts(study_uid: str, patient_id: str) -> list[bytes]:
    series = generate_uid()
    parts = []
    for number in (1, 2):
        ds = instance(study_uid, series, number)
        ds.PatientName, ds.PatientID = NAME, patient_id
        ds.PatientBirthDate, ds.AccessionNumber = BIRTH_DATE, ACCESSION
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        parts.append(buffer.getvalue())
    return parts


def _wait_for_jobs(client: httpx.Client, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        items = client.get("/api/v1/jobs").json()["items"]
        if len(items) >= count and all(j["state"] in ("succeeded", "failed") for j in items):
            return list(items)
        time.sleep(1.0)
    raise AssertionError(f"jobs not finished in {JOB_TIMEOUT_S} s: {items}")


def test_a_full_run_logs_no_patient_data(
    node: Running, capture: Capture, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    study = _phi_study(tmp_path)
    study_uid = str(
        pydicom.dcmread(next(study.rglob("*.dcm")), stop_before_pixels=True).StudyInstanceUID
    )
    port = node.node.dicom_port
    assert port
    storescu(study, "MSLESION", port)  # C-STORE of the whole study
    with httpx.Client(base_url=node.url, headers=node.admin, timeout=60) as client:
        # STOW-RS: a second study of the patient, then a contradiction of the first one's
        # patient (refused), and a part that is not DICOM (refused).
        body = multipart(_stow_parts(generate_uid(), PATIENT_ID))
        assert (
            client.post(
                "/dicom-web/studies", content=body, headers={"Content-Type": CONTENT_TYPE}
            ).status_code
            == 200
        )
        conflict = multipart(_stow_parts(study_uid, OTHER_ID))
        assert (
            client.post(
                "/dicom-web/studies", content=conflict, headers={"Content-Type": CONTENT_TYPE}
            ).status_code
            == 409
        )
        junk = multipart([b"not dicom " + PATIENT_ID.encode()])
        assert client.post(
            "/dicom-web/studies", content=junk, headers={"Content-Type": CONTENT_TYPE}
        ).status_code in (400, 409)

        jobs = _wait_for_jobs(client, 2)
        done = [j for j in jobs if j["study_uid"] == study_uid]
        assert done and done[0]["state"] == "succeeded", jobs
        job = done[0]["id"]
        for path in (
            f"/api/v1/jobs/{job}",
            *(f"/api/v1/jobs/{job}/results/{kind}" for kind in ("seg", "sr", "json", "png")),
            f"/api/v1/patients/{PATIENT_ID}/lesion-load",
            f"/api/v1/patients/{PATIENT_ID}/lesion-load.png",
            f"/dicom-web/studies/{study_uid}/series",
            f"/dicom-web/studies/{study_uid}",
            "/api/v1/audit",
        ):
            assert client.get(path).status_code == 200, path
        # Bad requests: unknown patient, malformed patient ID, no key, wrong key.
        assert client.get(f"/api/v1/patients/{UNKNOWN_ID}/lesion-load").status_code == 404
        assert client.get(f"/api/v1/patients/{PATIENT_ID}%5C%00/lesion-load").status_code == 422
        anonymous = httpx.get(f"{node.url}/api/v1/patients/{PATIENT_ID}/lesion-load")
        assert anonymous.status_code == 401
        wrong = httpx.get(
            f"{node.url}/api/v1/patients/{PATIENT_ID}/lesion-load", headers={"X-API-Key": "msl_x"}
        )
        assert wrong.status_code == 401

    out, err = capfd.readouterr()
    lines = capture.lines + out.splitlines() + err.splitlines()
    assert len(capture.lines) > 100, "the capture saw too little to prove anything"
    assert any(line.startswith("DEBUG pynetdicom") for line in capture.lines)
    # The access log was re-enabled by the capture's handler: its paths must be redacted.
    assert any("uvicorn.access" in line and "/patients/…/lesion-load" in line for line in lines)
    wanted = [n.lower() for n in NEEDLES]
    leaks = [line for line in lines if any(n in line.lower() for n in wanted)]
    assert not leaks, "patient data in log lines:\n" + "\n".join(leaks[:30])


def test_access_log_paths_are_redacted() -> None:
    assert (
        redact_path("/api/v1/patients/P 1/lesion-load.png?a=b")
        == "/api/v1/patients/…/lesion-load.png"
    )
    assert redact_path("/api/v1/jobs?state=failed") == "/api/v1/jobs"
