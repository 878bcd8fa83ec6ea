"""Debian DICOM tools (dcmtk, dicom3tools) used by several test packages.

A missing tool skips the test on a laptop and fails it in CI (MSLESION_REQUIRE_SHARED_DATA=1),
where a validator that silently does not run would hide regressions.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def require_tool(name: str) -> str:
    """Path of a Debian DICOM tool; skip (or fail in CI) when it is not installed."""
    found = shutil.which(name)
    if found is None:
        message = f"{name} not installed (apt: dcmtk / dicom3tools)"
        if os.environ.get("MSLESION_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(f"{message}; MSLESION_REQUIRE_SHARED_DATA=1")
        pytest.skip(message)
    return found


def dciodvfy_report(path: Path) -> str:
    """dciodvfy's whole report (stdout and stderr) for one file."""
    result = subprocess.run(
        [require_tool("dciodvfy"), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result.stdout + result.stderr


def dciodvfy_errors(path: Path) -> list[str]:
    """The "Error" lines dciodvfy reports for one file (warnings are allowed)."""
    return [
        line for line in dciodvfy_report(path).splitlines() if line.lstrip().startswith("Error")
    ]
