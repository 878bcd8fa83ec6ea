"""Fixtures of the listener tests: a running listener on the test's PostgreSQL database."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mslesion.services.config import Settings
from mslesion.services.listener import Listener
from mslesion.services.store.database import Database
from tests.dicom_tools import require_tool

SENDER_AET = "MODALITY1"


class RecordingDispatcher:
    """A dispatcher that only remembers what it was given (the queue is tested elsewhere)."""

    def __init__(self) -> None:
        self.jobs: list[str] = []
        self.forwards: list[str] = []
        self.comparisons: list[str] = []

    def enqueue_job(self, job_id: str) -> None:
        self.jobs.append(job_id)

    def enqueue_forward(self, job_id: str) -> None:
        self.forwards.append(job_id)

    def enqueue_comparison(self, comparison_id: str) -> None:
        self.comparisons.append(comparison_id)

    def enqueue_comparison_forward(self, comparison_id: str) -> None:
        self.forwards.append(comparison_id)

    def ping(self) -> None:
        return None


@pytest.fixture
def listener(node_settings: Settings, node_db: Database) -> Iterator[Listener]:
    """A started listener (ephemeral port) on the test's database."""
    require_tool("storescu")
    server = Listener(node_settings, node_db)
    server.start()
    yield server
    server.stop()


def storescu(
    port: int,
    files: list[Path],
    *,
    calling: str = SENDER_AET,
    called: str = "MSLESION",
) -> subprocess.CompletedProcess[str]:
    """Send ``files`` in one association with dcmtk's storescu."""
    cmd = ["storescu", "-aet", calling, "-aec", called, "127.0.0.1", str(port)]
    return subprocess.run(
        [*cmd, *map(str, files)], capture_output=True, text=True, timeout=120, check=False
    )
