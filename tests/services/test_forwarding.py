"""Forwarding a SEG and an SR: C-STORE to dcmtk ``storescp`` and to pynetdicom peers that
refuse, STOW-RS to a real HTTP server that parses the multipart body, and bad destinations.

Orthanc 1.10 serves DICOMweb only with the orthanc-dicomweb plugin, which this machine lacks;
the STOW-RS peer is therefore a small HTTP server in the test that checks each part is DICOM.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.uid import Comprehensive3DSRStorage, SegmentationStorage
from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification

from mslesion.devtools.dicom_writer import StudyInfo
from mslesion.services.config import Settings
from mslesion.services.forwarding import (
    Destination,
    DestinationError,
    DestinationKind,
    ForwardError,
    failed_sops,
    send,
)
from mslesion.services.reporting.seg import build_seg, patient_affine
from mslesion.services.reporting.sr import build_sr
from mslesion.services.segmentation.postprocess import describe_lesions
from tests.conftest import free_port
from tests.services.dicom.synthetic import write_series
from tests.worker.peers import StoreSCP

SETTINGS = Settings(forward_calling_aet="MSLTEST")


@dataclass(frozen=True)
class Results:
    seg: Path
    sr: Path

    @property
    def files(self) -> list[Path]:
        return [self.seg, self.sr]

    def uids(self) -> dict[str, str]:
        """SOP Instance UID -> SOP Class UID of the two files."""
        out = {}
        for path in self.files:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            out[str(ds.SOPInstanceUID)] = str(ds.SOPClassUID)
        return out


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Results:
    """A real SEG and TID 1500 SR of a small synthetic FLAIR series with one lesion."""
    folder = tmp_path_factory.mktemp("forwarding")
    info = StudyInfo(patient_id="FWD01", patient_name="FORWARD^TEST", study_date="20240301")
    files = write_series(folder / "flair", info)
    images = [pydicom.dcmread(f) for f in files]
    orient = np.array(images[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(orient[:3], orient[3:])
    images.sort(key=lambda ds: float(normal @ np.array(ds.ImagePositionPatient, dtype=float)))
    mask = np.zeros((len(images), int(images[0].Rows), int(images[0].Columns)), np.uint8)
    mask[8:12, 20:30, 25:35] = 1
    report = describe_lesions(mask, mask.astype(np.float32), patient_affine(images))
    seg = build_seg(images, mask, "flair_t1", "1.0.0", SETTINGS)
    sr = build_sr(images, seg, report, 1000.0, "flair_t1", "1.0.0", SETTINGS)
    out = Results(folder / "seg.dcm", folder / "sr.dcm")
    seg.save_as(out.seg)
    sr.save_as(out.sr)
    return out


# --- C-STORE ----------------------------------------------------------------------------------


@pytest.fixture
def storescp(tmp_path: Path) -> Iterator[StoreSCP]:
    scp = StoreSCP.start(free_port(), tmp_path / "received")
    yield scp
    scp.stop()


def test_c_store_delivers_seg_and_sr_to_storescp(results: Results, storescp: StoreSCP) -> None:
    send(f"dicom://{storescp.aet}@127.0.0.1:{storescp.port}", results.files, SETTINGS)
    received = storescp.received()
    expected = results.uids()
    assert set(received) == set(expected)
    assert {str(ds.SOPClassUID) for ds in received.values()} == {
        SegmentationStorage,
        Comprehensive3DSRStorage,
    }


@pytest.fixture
def refusing_scp() -> Iterator[tuple[int, list[str]]]:
    """A pynetdicom SCP (called AE REALPACS, checked) answering C-STORE with 0xA700."""
    calling: list[str] = []

    def on_store(event: Any) -> int:
        calling.append(event.assoc.requestor.ae_title)
        return 0xA700

    ae = AE(ae_title="REALPACS")
    ae.require_called_aet = True
    for sop_class in (SegmentationStorage, Comprehensive3DSRStorage):
        ae.add_supported_context(sop_class)
    ae.add_supported_context(Verification)
    port = free_port()
    server = ae.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    yield port, calling
    server.shutdown()


def test_c_store_failure_status_is_named(
    results: Results, refusing_scp: tuple[int, list[str]]
) -> None:
    port, calling = refusing_scp
    with pytest.raises(ForwardError) as caught:
        send(f"dicom://REALPACS@127.0.0.1:{port}", results.files, SETTINGS)
    message = str(caught.value)
    assert f"REALPACS@127.0.0.1:{port}" in message
    assert "status 0xA700" in message and "SEG" in message
    assert calling == ["MSLTEST"]  # the configured calling AE title


def test_c_store_rejected_association_is_named(
    results: Results, refusing_scp: tuple[int, list[str]]
) -> None:
    port, _ = refusing_scp
    with pytest.raises(ForwardError, match=r"association rejected.*called AE 'WRONGAET'"):
        send(f"dicom://WRONGAET@127.0.0.1:{port}", results.files, SETTINGS)


def test_c_store_to_nobody_is_named(results: Results) -> None:
    port = free_port()
    with pytest.raises(ForwardError, match=f"PACS@127.0.0.1:{port}: no association"):
        send(f"dicom://PACS@127.0.0.1:{port}", results.files, SETTINGS)


# --- STOW-RS ----------------------------------------------------------------------------------


@dataclass
class StowServer:
    """A DICOMweb STOW-RS endpoint that parses the multipart/related body."""

    url: str
    received: list[pydicom.Dataset] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path, content type)
    refuse_sr: bool = False


def _parts(content_type: str, body: bytes) -> list[bytes]:
    params = dict(p.strip().split("=", 1) for p in content_type.split(";")[1:] if "=" in p)
    assert params.get("type", "").strip('"') == "application/dicom", content_type
    boundary = params["boundary"].strip('"').encode()
    chunks = body.split(b"--" + boundary)
    assert chunks[-1].strip() == b"--", "missing close delimiter"
    parts = []
    for chunk in chunks[1:-1]:
        headers, _, payload = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        assert b"content-type: application/dicom" in headers.lower()
        parts.append(payload.removesuffix(b"\r\n"))
    return parts


@pytest.fixture
def stow_server() -> Iterator[StowServer]:
    port = free_port()
    state = StowServer(url=f"http://127.0.0.1:{port}/dicom-web")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            content_type = self.headers["Content-Type"]
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.requests.append((self.path, content_type))
            stored, failed = [], []
            for part in _parts(content_type, body):
                ds = pydicom.dcmread(io.BytesIO(part))  # each part must be DICOM
                item = {"00081155": {"vr": "UI", "Value": [str(ds.SOPInstanceUID)]}}
                if state.refuse_sr and ds.Modality == "SR":
                    item["00081197"] = {"vr": "US", "Value": [0xA900]}
                    failed.append(item)
                else:
                    state.received.append(ds)
                    stored.append(item)
            answer: dict[str, Any] = {"00081199": {"vr": "SQ", "Value": stored}}
            if failed:
                answer["00081198"] = {"vr": "SQ", "Value": failed}
            payload = json.dumps(answer).encode()
            self.send_response(409 if failed else 200)
            self.send_header("Content-Type", "application/dicom+json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def test_stow_rs_delivers_seg_and_sr(results: Results, stow_server: StowServer) -> None:
    send(stow_server.url + "/", results.files, SETTINGS)
    assert [path for path, _ in stow_server.requests] == ["/dicom-web/studies"]
    assert stow_server.requests[0][1].startswith('multipart/related; type="application/dicom"')
    got = {str(ds.SOPInstanceUID): str(ds.SOPClassUID) for ds in stow_server.received}
    assert got == results.uids()


def test_stow_rs_failure_reason_is_named(results: Results, stow_server: StowServer) -> None:
    stow_server.refuse_sr = True
    sr_uid = str(pydicom.dcmread(results.sr, stop_before_pixels=True).SOPInstanceUID)
    with pytest.raises(ForwardError) as caught:
        send(stow_server.url, results.files, SETTINGS)
    message = str(caught.value)
    assert "HTTP 409" in message and f"{sr_uid}: FailureReason 0xA900" in message


def test_stow_rs_to_nobody_is_named(results: Results) -> None:
    with pytest.raises(ForwardError, match=r"STOW-RS request failed.*ConnectError"):
        send(f"http://127.0.0.1:{free_port()}/dicom-web", results.files, SETTINGS)


def test_failed_sops_reads_dicom_json() -> None:
    body = json.dumps(
        {
            "00081198": {
                "vr": "SQ",
                "Value": [
                    {
                        "00081155": {"vr": "UI", "Value": ["1.2.3"]},
                        "00081197": {"vr": "US", "Value": [272]},
                    }
                ],
            }
        }
    ).encode()
    assert failed_sops(body) == ["1.2.3: FailureReason 0x0110"]
    assert failed_sops(b"<html>proxy error</html>") == []
    assert failed_sops(b"") == []


# --- destinations -----------------------------------------------------------------------------


def test_destinations_parse() -> None:
    cstore = Destination.parse("dicom://PACS_1@pacs.example.org:104")
    assert (cstore.kind, cstore.ae_title, cstore.host, cstore.port) == (
        DestinationKind.CSTORE,
        "PACS_1",
        "pacs.example.org",
        104,
    )
    stow = Destination.parse("https://viewer.example.org/dicom-web/")
    assert (stow.kind, stow.url, stow.port) == (
        DestinationKind.STOW,
        "https://viewer.example.org/dicom-web",
        443,
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("pacs.example.org:104", "no scheme"),
        ("ftp://host/x", "unknown scheme 'ftp'"),
        ("dicom://pacs:104", "called AE title is missing"),
        ("dicom://PACS@pacs", "port is missing"),
        ("dicom://PACS@pacs:10x", "could not be cast to integer"),
        ("dicom://PACS@pacs:0", "greater than or equal to 1"),
        ("dicom://PACS@pacs:70000", "out of range"),
        ("dicom://SEVENTEEN_CHARS_AE@pacs:104", "longer than 16 characters"),
        ("dicom://PACS@pacs:104/path", "no path or query"),
        ("http:///dicom-web", "host: the host is missing"),
    ],
)
def test_bad_destinations_are_refused_clearly(text: str, reason: str) -> None:
    with pytest.raises(DestinationError) as caught:
        Destination.parse(text)
    assert reason in str(caught.value)
    assert repr(text) in str(caught.value)


def test_passwords_are_hidden_in_errors() -> None:
    with pytest.raises(DestinationError) as caught:
        Destination.parse("https://user:s3cret@host/dicom-web?x=1")
    assert "s3cret" not in str(caught.value) and "user:***@host" in str(caught.value)
    assert "s3cret" not in str(Destination.parse("https://user:s3cret@host/dicom-web"))


def test_send_to_a_bad_destination_is_a_forward_error(results: Results) -> None:
    with pytest.raises(ForwardError, match="called AE title is missing"):
        send("dicom://pacs:104", results.files, SETTINGS)
