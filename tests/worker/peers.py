"""Real peers and processes for the worker and forwarding tests: dcmtk ``storescp`` and a
Celery worker process, plus a polling helper."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pydicom

from mslesion.services.config import REPO_ROOT, Settings
from tests.dicom_tools import require_tool

T = TypeVar("T")


def wait_for(check: Callable[[], T], timeout_s: float, what: str, interval_s: float = 0.2) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on ``port``."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _stop(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@dataclass
class StoreSCP:
    """dcmtk ``storescp`` receiving into ``folder`` on ``port``."""

    port: int
    folder: Path
    aet: str
    proc: subprocess.Popen[bytes]

    @classmethod
    def start(cls, port: int, folder: Path, aet: str = "STORESCP") -> StoreSCP:
        """Start it and wait until it accepts connections."""
        require_tool("storescp")
        folder.mkdir(parents=True, exist_ok=True)
        log = (folder.parent / f"storescp-{port}.log").open("wb")
        proc = subprocess.Popen(
            ["storescp", "-aet", aet, "+xa", "-od", str(folder), str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        scp = cls(port, folder, aet, proc)
        try:
            wait_for(lambda: proc.poll() is not None or port_open(port), 20, "storescp")
        except BaseException:
            scp.stop()
            raise
        assert proc.poll() is None, f"storescp exited with {proc.returncode}"
        return scp

    def received(self) -> dict[str, pydicom.Dataset]:
        """SOP Instance UID -> header of every instance received so far."""
        out = {}
        for path in self.folder.iterdir():
            if path.is_file():
                ds = pydicom.dcmread(path, stop_before_pixels=True)
                out[str(ds.SOPInstanceUID)] = ds
        return out

    def stop(self) -> None:
        """Stop storescp."""
        _stop(self.proc)


def settings_env(settings: Settings) -> dict[str, str]:
    """``MSLESION_*`` variables that recreate ``settings``' node fields in a child process."""
    fields = {
        "data_dir": str(settings.data_dir),
        "database_url": settings.database_url or "",
        "broker_url": settings.broker_url or "",
        "forward_destinations": json.dumps(settings.forward_destinations),
        "forward_max_retries": str(settings.forward_max_retries),
        "forward_retry_backoff_s": str(settings.forward_retry_backoff_s),
        "forward_calling_aet": settings.forward_calling_aet,
        "job_max_retries": str(settings.job_max_retries),
        "job_retry_backoff_s": str(settings.job_retry_backoff_s),
        "provider": settings.provider.value,
        "intra_op_threads": str(settings.intra_op_threads),
    }
    return {f"MSLESION_{k.upper()}": v for k, v in fields.items()}


@dataclass
class CeleryWorkerProcess:
    """``celery -A worker.celery_app worker`` as a real child process."""

    name: str
    log_path: Path
    proc: subprocess.Popen[bytes]

    @classmethod
    def start(cls, settings: Settings, log_dir: Path) -> CeleryWorkerProcess:
        """Start a prefork worker with one pool process; wait until it is ready."""
        name = f"mslesion-test-{uuid.uuid4().hex[:8]}@%h"
        log_path = log_dir / "celery-worker.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MSLESION_")}
        env |= settings_env(settings)
        proc = subprocess.Popen(
            [
                str(REPO_ROOT / ".venv" / "bin" / "celery"),
                "-A",
                "mslesion.worker.celery_app",
                "worker",
                "--pool",
                "prefork",
                "-c",
                "1",
                "--loglevel",
                "INFO",
                "-n",
                name,
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )
        worker = cls(name, log_path, proc)
        try:
            wait_for(
                lambda: proc.poll() is not None or " ready." in worker.log(),
                120,
                "the Celery worker to be ready",
            )
        except BaseException:
            worker.stop()
            raise
        assert proc.poll() is None, f"celery worker exited:\n{worker.log()[-3000:]}"
        return worker

    def log(self) -> str:
        """Everything the worker logged so far."""
        return self.log_path.read_text(errors="replace")

    def task_result(self, task_id: str) -> str | None:
        """The logged return value of a finished task (e.g. ``'skipped'``), or None."""
        for line in self.log().splitlines():
            if f"[{task_id}] succeeded" in line:
                return line.rsplit(": ", 1)[-1].strip("'")
        return None

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then kill if it hangs."""
        _stop(self.proc, 60)
