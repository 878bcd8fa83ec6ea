"""Fault: PostgreSQL unreachable.

The node's database URL goes through a TCP proxy that the test cuts: the listener must answer
C-STORE with 0xA701 (a transient refusal the PACS retries), the gateway 503 on readiness and
on STOW-RS; once the proxy is restored the same sends succeed, and every instance ever
acknowledged is in the database and in the spool.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

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
from tests.reliability.proxy import CuttableProxy
from tests.services.listener.conftest import RecordingDispatcher
from tests.services.listener.instances import write_series


@pytest.fixture
def proxy(pg_url: str) -> Iterator[CuttableProxy]:
    url = make_url(pg_url)
    proxy = CuttableProxy((url.host or "localhost", url.port or 5432))
    yield proxy
    proxy.close()


@pytest.fixture
def proxied(node_settings: Settings, pg_url: str, proxy: CuttableProxy) -> Settings:
    """The node's settings with its database reached only through the proxy."""
    url = make_url(pg_url).set(host="127.0.0.1", port=proxy.port)
    return node_settings.model_copy(
        update={"database_url": url.render_as_string(hide_password=False)}
    )


def test_database_outage_refuses_transiently_and_loses_nothing(
    proxied: Settings, proxy: CuttableProxy, tmp_path: Path
) -> None:
    db = Database(proxied.resolved_database_url())
    listener = Listener(proxied, db)
    port = listener.start()
    files = write_series(tmp_path / "series", 6, size=64)
    before, during_dimse, during_stow = files[:3], files[3], files[4]
    try:
        with db.session() as session:
            key = keys.create_key(session, "faults", Role.UPLOADER)
        auth = {"Authorization": f"Bearer {key}"}
        client = TestClient(create_app(proxied, db, RecordingDispatcher()))
        for path in before:
            assert c_store(port, path).status == DicomStatus.SUCCESS
        assert client.get("/health/ready").status_code == 200

        proxy.cut()

        refused = c_store(port, during_dimse)
        assert refused.status == DicomStatus.OUT_OF_RESOURCES_DB == 0xA701, refused
        assert "database" in refused.comment
        assert c_echo(port) == DicomStatus.SUCCESS  # the listener itself stays up
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"]["ok"] is False
        assert client.get("/health/live").status_code == 200
        stow = client.post(
            "/dicom-web/studies",
            content=multipart([during_stow.read_bytes()]),
            headers=STOW_HEADERS | auth,
        )
        assert stow.status_code == 503, stow.text
        assert "database" in stow.json()["detail"]

        proxy.restore()

        # The PACS retries the very same instance; the STOW client retries its request.
        assert c_store(port, during_dimse).status == DicomStatus.SUCCESS
        stow = client.post(
            "/dicom-web/studies",
            content=multipart([during_stow.read_bytes()]),
            headers=STOW_HEADERS | auth,
        )
        assert stow.status_code == 200, stow.text
        assert client.get("/health/ready").status_code == 200
        assert c_store(port, files[5]).status == DicomStatus.SUCCESS  # and new work flows

        rows = assert_spool_matches_database(proxied, db)
        acknowledged = {p.stem for p in files}  # files are named by SOP Instance UID
        assert set(rows) == acknowledged
    finally:
        listener.stop()
        db.dispose()
