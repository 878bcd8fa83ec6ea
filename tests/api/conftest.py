"""Fixtures of the gateway tests: an app on the test's PostgreSQL, keys of each role, a
recording dispatcher, a live uvicorn server, and real SEG/SR results of a phantom study."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from mslesion.api.main import create_app
from mslesion.devtools.dicom_writer import StudyInfo
from mslesion.services.config import Settings
from mslesion.services.store.database import Database
from mslesion.services.store.enums import Role
from mslesion.services.store.repositories import keys
from tests.api.seeding import PhantomRun, run_phantom
from tests.conftest import free_port
from tests.services.dicom.synthetic import write_series


@dataclass
class RecordingDispatcher:
    """A queue that only remembers what it was given (the Celery path is tested in worker/)."""

    jobs: list[str] = field(default_factory=list)
    forwards: list[str] = field(default_factory=list)
    comparisons: list[str] = field(default_factory=list)
    comparison_forwards: list[str] = field(default_factory=list)
    broken: bool = False

    def enqueue_job(self, job_id: str) -> None:
        self._check()
        self.jobs.append(job_id)

    def enqueue_forward(self, job_id: str) -> None:
        self._check()
        self.forwards.append(job_id)

    def enqueue_comparison(self, comparison_id: str) -> None:
        self._check()
        self.comparisons.append(comparison_id)

    def enqueue_comparison_forward(self, comparison_id: str) -> None:
        self._check()
        self.comparison_forwards.append(comparison_id)

    def ping(self) -> None:
        self._check()

    def _check(self) -> None:
        if self.broken:
            raise ConnectionError("broker unreachable")


@dataclass
class Gateway:
    """An app with its settings, database, dispatcher and one key per role."""

    app: FastAPI
    settings: Settings
    db: Database
    dispatcher: RecordingDispatcher
    keys: dict[Role, str]

    def auth(self, role: Role) -> dict[str, str]:
        """Headers authenticating as the key of ``role``."""
        return {"Authorization": f"Bearer {self.keys[role]}"}


@pytest.fixture
def gateway(node_settings: Settings, node_db: Database) -> Gateway:
    """The gateway of a fresh node, with an uploader, a reader and an admin key."""
    dispatcher = RecordingDispatcher()
    with node_db.session() as session:
        made = {role: keys.create_key(session, f"{role.value}-key", role) for role in Role}
    return Gateway(
        create_app(node_settings, node_db, dispatcher), node_settings, node_db, dispatcher, made
    )


@pytest.fixture
def client(gateway: Gateway) -> Iterator[TestClient]:
    """A TestClient of the gateway (server errors become 500 responses, as in production)."""
    with TestClient(gateway.app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def live_url(gateway: Gateway) -> Iterator[str]:
    """The gateway served by a real uvicorn server on a free port (base URL, no slash)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(gateway.app, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def mr_series(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Twenty small MR Image Storage files of one synthetic study."""
    out = tmp_path_factory.mktemp("mr")
    info = StudyInfo(patient_id="SYN01", patient_name="SYN^PATIENT", study_date="20240102")
    return write_series(out / "flair", info)


@pytest.fixture(scope="session")
def phantom_run(tmp_path_factory: pytest.TempPathFactory) -> PhantomRun:
    """A phantom study segmented once by the real pipeline with the shipped model (~25 s)."""
    return run_phantom(tmp_path_factory.mktemp("phantom"))
