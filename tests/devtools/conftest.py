"""Fixtures of the dev-tool tests: one synthetic FLAIR series written by the DICOM writer."""

from __future__ import annotations

from pathlib import Path

import pytest

from mslesion.devtools.dicom_writer import StudyInfo
from tests.services.dicom.synthetic import write_series


@pytest.fixture(scope="session")
def flair_dir(tmp_path_factory: pytest.TempPathFactory, study_info: StudyInfo) -> Path:
    """A study folder holding one synthetic 64×64×20 FLAIR series (in ``study/flair``).

    Written once per session: tests only read it.
    """
    root = tmp_path_factory.mktemp("writer") / "study"
    write_series(root / "flair", study_info)
    return root
