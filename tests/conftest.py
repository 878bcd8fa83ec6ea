"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the shared real-MRI data (``../shared/data`` beside the repository).

    ``MSLESION_SHARED_DATA_DIR`` overrides the location. When the folder is absent the test
    is skipped, unless ``MSLESION_REQUIRE_SHARED_DATA=1`` (CI), where silently skipping the
    real-data tests would hide regressions, so the test fails instead.
    """
    override = os.environ.get("MSLESION_SHARED_DATA_DIR")
    root = (
        Path(override)
        if override
        else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    )
    if not root.is_dir():
        msg = f"../shared/data absent: {root} does not exist"
        if os.environ.get("MSLESION_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(f"{msg} (MSLESION_REQUIRE_SHARED_DATA=1)")
        pytest.skip(msg)
    return root
