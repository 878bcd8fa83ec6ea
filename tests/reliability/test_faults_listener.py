"""Fault: the listener process is killed (SIGKILL) in the middle of an association.

``mslesion listener`` receives 20 large instances from dcmtk ``storescu``; it is killed while
they arrive. No half-written instance may become visible: every file under a final spool name
has its database row and is whole, every row has its file (staging ``.incoming-*.part`` files
may remain; the runner reads only recorded paths). The restarted listener accepts the
resent association in full, and the study is complete and consistent.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from pathlib import Path

import pydicom
import pytest
from pynetdicom import AE
from sqlalchemy import select

from mslesion.services.config import Settings
from mslesion.services.store.database import Database
from mslesion.services.store.tables import Study
from tests.conftest import free_port
from tests.dicom_tools import require_tool
from tests.e2e.processes import Child, mslesion_command, node_env, port_open, start_child, wait_for
from tests.reliability.node import assert_spool_matches_database, instance_rows
from tests.services.listener.instances import write_series
from tests.worker.peers import settings_env

COUNT = 20
EDGE = 1224  # 1224² 16-bit pixels: 3 MB per instance


def _start_listener(settings: Settings, port: int, log_dir: Path, name: str) -> Child:
    env = node_env(settings_env(settings))
    env |= {"MSLESION_DICOM_PORT": str(port), "MSLESION_DICOM_HOST": "127.0.0.1"}
    env["MSLESION_STUDY_QUIET_S"] = "3600"  # no job is wanted here, only reception
    child = start_child(name, [*mslesion_command(), "listener"], env, log_dir)
    wait_for("the listener to accept connections", lambda: port_open(port), 60, [child])
    return child


def _storescu(port: int, files: list[Path]) -> subprocess.Popen[str]:
    argv = [require_tool("storescu"), "-aet", "FAULTSCU", "-aec", "MSLESION", "127.0.0.1"]
    return subprocess.Popen(
        [*argv, str(port), *map(str, files)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_listener_killed_mid_association_leaves_nothing_half_visible(
    node_settings: Settings, node_db: Database, redis_url: str, tmp_path: Path
) -> None:
    settings = node_settings.model_copy(update={"broker_url": redis_url})
    files = write_series(tmp_path / "series", COUNT, size=EDGE)
    port = free_port()
    first = _start_listener(settings, port, tmp_path / "logs", "listener-1")
    second: Child | None = None
    try:
        acknowledged = _send_then_kill(port, files, first, sent_before_kill=5)
        stored_before = len(instance_rows(node_db))
        print(f"killed after {stored_before} of {COUNT} instances stored")
        # every acknowledged instance is stored; the one in flight may or may not be
        assert acknowledged <= stored_before <= acknowledged + 1 < COUNT

        assert_spool_matches_database(settings, node_db)
        leftovers = list(settings.spool_dir.rglob(".incoming-*.part"))
        print(f"staging leftovers after the kill: {len(leftovers)}")

        second = _start_listener(settings, port, tmp_path / "logs", "listener-2")
        resend = _storescu(port, files)
        out, _ = resend.communicate(timeout=300)
        assert resend.returncode == 0, out

        rows = assert_spool_matches_database(settings, node_db)
        assert set(rows) == {p.stem for p in files}
        assert len({row.study_id for row in rows.values()}) == 1
        with node_db.session() as session:
            study = session.scalars(select(Study)).one()
            assert study.instance_count == COUNT  # counted once each, kill or not
    finally:
        for child in (first, second):
            if child is not None and child.alive():
                child.stop()


def _send_then_kill(port: int, files: list[Path], listener: Child, sent_before_kill: int) -> int:
    """Send instances one by one on one association; SIGKILL the listener while the next one
    is in flight. Deterministic on any machine speed (a fast idle machine finished a whole
    storescu run before a poll could kill it). Returns how many were acknowledged."""
    datasets = [pydicom.dcmread(f) for f in files]
    ae = AE(ae_title="FAULTSCU")
    ae.add_requested_context(datasets[0].SOPClassUID, datasets[0].file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title="MSLESION")
    assert assoc.is_established
    acknowledged = 0
    for ds in datasets[:sent_before_kill]:
        assert assoc.send_c_store(ds).Status == 0x0000
        acknowledged += 1
    in_flight = threading.Thread(target=assoc.send_c_store, args=(datasets[sent_before_kill],))
    in_flight.start()
    listener.process.send_signal(signal.SIGKILL)
    listener.process.wait(10)
    in_flight.join(60)
    # The sender's association thread notices the dead peer on its own schedule, after the
    # C-STORE call returned: wait for that state change (bounded) as a sender would.
    wait_for(
        "the sender to see the association die",
        lambda: True if not assoc.is_established else None,
        timeout_s=10,
        interval_s=0.05,
    )
    return acknowledged


@pytest.fixture(autouse=True)
def _needs_storescu() -> None:
    require_tool("storescu")
