"""Child processes of the end-to-end tests: the node's commands and dcmtk tools, logged to files.

Every process writes stdout and stderr to its own log file so that a failing test can show
what happened, and so that the PHI check can read every line the node wrote.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from tests.e2e.orthanc import stop_process

REPO_ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def mslesion_command() -> list[str]:
    """The ``mslesion`` entry point of the environment running the tests."""
    script = Path(sys.executable).parent / "mslesion"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mslesion.cli"]


@dataclass
class Child:
    """A running child process and the file its output goes to."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.process.poll() is None

    def log(self) -> str:
        """Everything the process has written so far."""
        return self.log_path.read_text(errors="replace")

    def tail(self, chars: int = 3000) -> str:
        """The end of the log, for assertion messages."""
        return f"--- {self.name} ({self.log_path}) ---\n{self.log()[-chars:]}"

    def stop(self) -> None:
        """Terminate the process (SIGTERM, then SIGKILL)."""
        stop_process(self.process)


def node_env(settings_env: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without stray MSLESION_* variables, plus ``settings_env``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MSLESION_")}
    # Keep the pointer to the shared data and CI's strictness; all else comes from the test.
    for key in ("MSLESION_SHARED_DATA_DIR", "MSLESION_REQUIRE_SHARED_DATA"):
        if key in os.environ:
            env[key] = os.environ[key]
    env["PYTHONUNBUFFERED"] = "1"
    env.update(settings_env)
    return env


def start_child(name: str, argv: list[str], env: Mapping[str, str], log_dir: Path) -> Child:
    """Start ``argv`` with its output in ``log_dir/name.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=dict(env), cwd=REPO_ROOT
        )
    return Child(name, process, log_path)


def run_command(argv: list[str], env: Mapping[str, str], timeout_s: float = 120.0) -> str:
    """Run a command to completion and return its stdout; raise with its output on failure."""
    result = subprocess.run(
        argv, env=dict(env), cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout_s
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result.stdout


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    timeout_s: float,
    children: Iterable[Child] = (),
    interval_s: float = 0.5,
) -> T:
    """Poll ``probe`` until it returns a value; fail early when a child process died."""
    watched = list(children)
    deadline = time.monotonic() + timeout_s
    while True:
        for child in watched:
            if not child.alive():
                raise AssertionError(
                    f"{child.name} exited ({child.process.returncode}) while waiting for "
                    f"{what}\n{child.tail()}"
                )
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            logs = "\n".join(child.tail() for child in watched)
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}\n{logs}")
        time.sleep(interval_s)


def port_open(port: int, host: str = "127.0.0.1") -> bool | None:
    """True when something accepts TCP connections on ``port``; None otherwise (for wait_for)."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return None


def storescu(folder: Path, aet: str, port: int, calling_aet: str = "MODALITY") -> None:
    """Send every file under ``folder`` by dcmtk ``storescu`` (recursively, one association)."""
    from tests.dicom_tools import require_tool

    result = subprocess.run(
        [
            require_tool("storescu"),
            "-aet", calling_aet, "-aec", aet,
            "+sd", "+r",  # scan the folder recursively
            "127.0.0.1", str(port), str(folder),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"storescu failed ({result.returncode}):\n{result.stderr[-3000:]}")


def lines_containing(log_paths: Iterable[Path], needles: Iterable[str]) -> list[str]:
    """Every log line (``file: line``) that contains one of ``needles`` (case-insensitive)."""
    wanted = [needle.lower() for needle in needles if needle]
    hits = []
    for path in log_paths:
        for line in path.read_text(errors="replace").splitlines():
            lowered = line.lower()
            if any(needle in lowered for needle in wanted):
                hits.append(f"{path.name}: {line}")
    return hits
