"""Fault: the spool's disk is full.

The node's data folder is a small tmpfs. Filled up, the listener answers C-STORE with
0xA700 (out of resources) and STOW-RS gets 507, while C-ECHO and /health/live keep
answering; when space returns, the retried sends succeed. No partial file is left visible.
"""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from mslesion.api.main import create_app
from mslesion.services.config import Settings
from mslesion.services.ingest import DicomStatus
from mslesion.services.listener import Listener
from mslesion.services.store.database import Database
from mslesion.services.store.enums import Role
from mslesion.services.store.repositories import keys
from tests.reliability.node import (
    STOW_HEADERS,
    assert_spool_matches_database,
    c_echo,
    c_store,
    multipart,
)
from tests.reliability.tmpfs import fill, small_tmpfs
from tests.services.listener.conftest import RecordingDispatcher
from tests.services.listener.instances import write_series

INSTANCE_EDGE = 256  # 256² 16-bit pixels: a 128 KiB instance


def test_full_spool_refuses_with_out_of_resources_and_recovers(
    node_settings: Settings, node_db: Database, tmp_path: Path
) -> None:
    files = write_series(tmp_path / "series", 4, size=INSTANCE_EDGE)
    first, dimse_late, stow_late, last = files
    with small_tmpfs(node_settings.data_dir, "4m") as data_dir:
        listener = Listener(node_settings, node_db)
        port = listener.start()
        try:
            with node_db.session() as session:
                key = keys.create_key(session, "faults", Role.UPLOADER)
            auth = {"Authorization": f"Bearer {key}"}
            client = TestClient(create_app(node_settings, node_db, RecordingDispatcher()))
            assert c_store(port, first).status == DicomStatus.SUCCESS

            filler = fill(data_dir, leave_bytes=16 * 1024)

            refused = c_store(port, dimse_late)
            assert refused.status == DicomStatus.OUT_OF_RESOURCES == 0xA700, refused
            assert "storage is full" in refused.comment
            stow = client.post(
                "/dicom-web/studies",
                content=multipart([stow_late.read_bytes()]),
                headers=STOW_HEADERS | auth,
            )
            assert stow.status_code == 507, stow.text
            assert "storage is full" in stow.json()["detail"]
            # still serving: the node is up, only storage is refused
            assert c_echo(port) == DicomStatus.SUCCESS
            assert client.get("/health/live").status_code == 200
            assert_spool_matches_database(node_settings, node_db)  # nothing half-written
            assert not list(node_settings.spool_dir.rglob(".incoming-*"))

            filler.unlink()  # space returns

            assert c_store(port, dimse_late).status == DicomStatus.SUCCESS
            stow = client.post(
                "/dicom-web/studies",
                content=multipart([stow_late.read_bytes()]),
                headers=STOW_HEADERS | auth,
            )
            assert stow.status_code == 200, stow.text
            assert c_store(port, last).status == DicomStatus.SUCCESS
            rows = assert_spool_matches_database(node_settings, node_db)
            assert set(rows) == {p.stem for p in files}
        finally:
            listener.stop()
