"""Processes the fault tests kill: a private Redis server and Celery workers.

Unlike tests/worker/peers.py's worker, these pass extra settings (short requeue times) and
run in their own process group, so a test can SIGKILL the pool process alone or
the whole worker at once.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from mslesion.services.config import REPO_ROOT, Settings
from tests.worker.peers import port_open, settings_env, wait_for


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment recreating ``settings`` in a child, reliability fields included.

    The lease stays the default: a test's short lease serves its in-process reconciler, and a
    worker's lease must outlast the hard time limit (Settings refuses a shorter one). A
    worker takes over a killed worker's job by its dead pid, not by the lease.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSLESION_")}
    env |= settings_env(settings)
    env |= {
        "MSLESION_REQUEUE_AFTER_S": str(settings.requeue_after_s),
        "PYTHONUNBUFFERED": "1",
    }
    return env


@dataclass
class RedisServer:
    """``redis-server`` on ``port`` with no persistence: a restart loses every message."""

    port: int
    log_path: Path
    proc: subprocess.Popen[bytes]

    @classmethod
    def start(cls, port: int, log_dir: Path) -> RedisServer:
        """Start it and wait until it accepts connections."""
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.skip("redis-server is not installed")
        log_path = log_dir / f"redis-{port}.log"
        argv = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        with log_path.open("ab") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=log_dir)
        server = cls(port, log_path, proc)
        wait_for(lambda: proc.poll() is not None or port_open(port), 20, "redis-server")
        assert proc.poll() is None, log_path.read_text()
        return server

    @property
    def url(self) -> str:
        """The broker URL of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        """SIGKILL: the server dies with every message it held."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@dataclass
class WorkerProcess:
    """A prefork Celery worker (one pool process) in its own process group."""

    log_path: Path
    proc: subprocess.Popen[bytes]

    @classmethod
    def start(cls, settings: Settings, log_dir: Path, label: str) -> WorkerProcess:
        """Start it and wait until it is ready (its pool process has loaded the model)."""
        log_path = log_dir / f"worker-{label}.log"
        argv = [
            str(REPO_ROOT / ".venv" / "bin" / "celery"),
            "-A", "mslesion.worker.celery_app", "worker",
            "--pool", "prefork", "-c", "1", "--loglevel", "INFO",
            "-n", f"faults-{label}-{uuid.uuid4().hex[:6]}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                argv,
                cwd=REPO_ROOT,
                env=worker_env(settings),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killpg takes it all
            )
        worker = cls(log_path, proc)
        try:
            wait_for(
                lambda: proc.poll() is not None or " ready." in worker.log(),
                180,
                f"the Celery worker {label} to be ready",
            )
        except BaseException:
            worker.kill_all()
            raise
        assert proc.poll() is None, f"celery worker exited:\n{worker.log()[-3000:]}"
        return worker

    def log(self) -> str:
        """Everything it logged so far."""
        return self.log_path.read_text(errors="replace")

    def pool_pids(self) -> list[int]:
        """The pids of its pool processes (children of the main process)."""
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            return [int(pid) for pid in path.read_text().split()]
        except FileNotFoundError:
            return []

    def kill_all(self) -> None:
        """SIGKILL the main process and its pool at once (no warm shutdown, no requeue)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(20)

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL if it hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill_all()
