"""The Orthanc harness itself: a study sent by storescu is found by REST and auto-routed.

dcmtk ``storescp`` stands in for the node here, so this checks the routing rule (Lua
``OnStableStudy``) on its own, in seconds, before the full end-to-end test relies on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mslesion.devtools.dicom_writer import StudyInfo
from tests.conftest import free_port
from tests.dicom_tools import require_tool
from tests.e2e.orthanc import NODE_MODALITY, Orthanc, route_to_node_lua, start_orthanc
from tests.e2e.processes import Child, port_open, start_child, storescu, wait_for
from tests.services.dicom.synthetic import write_series


@pytest.fixture
def stand_in_node(tmp_path: Path) -> Iterator[tuple[Child, int, Path]]:
    """dcmtk storescp as AE MSLESION, writing what it receives to a folder."""
    port = free_port()
    received = tmp_path / "received"
    received.mkdir()
    child = start_child(
        "storescp",
        [require_tool("storescp"), "-aet", "MSLESION", "-od", str(received), str(port)],
        {},
        tmp_path / "logs",
    )
    try:
        wait_for("storescp to listen", lambda: port_open(port), 30, [child])
        yield child, port, received
    finally:
        child.stop()


@pytest.fixture
def orthanc(tmp_path: Path, stand_in_node: tuple[Child, int, Path]) -> Iterator[Orthanc]:
    _, node_port, _ = stand_in_node
    server = start_orthanc(
        tmp_path / "orthanc",
        http_port=free_port(),
        dicom_port=free_port(),
        modalities={NODE_MODALITY: ("MSLESION", "127.0.0.1", node_port)},
        stable_age_s=2,
        lua=route_to_node_lua(),
    )
    try:
        yield server
    finally:
        server.stop()


def test_stored_study_is_found_and_routed_when_stable(
    tmp_path: Path, orthanc: Orthanc, stand_in_node: tuple[Child, int, Path]
) -> None:
    child, _, received = stand_in_node
    study = StudyInfo(patient_id="HARNESS01", patient_name="HARNESS^TEST", study_date="20200101")
    files = write_series(tmp_path / "study", study)

    storescu(tmp_path / "study", orthanc.aet, orthanc.dicom_port)

    assert orthanc.modalities_in_study(study.study_uid) == ["MR"]
    routed = wait_for(
        "the stable study to reach the stand-in node",
        lambda: (len(list(received.iterdir())) == len(files)) or None,
        60,
        [child],
    )
    assert routed
    assert "mslesion route: study" in orthanc.log_path.read_text(errors="replace")
