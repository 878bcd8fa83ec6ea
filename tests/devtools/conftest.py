"""Fixtures of the dev-tool tests: one synthetic FLAIR series written by the DICOM writer."""

from __future__ import annotations

from pathlib import Path

import pytest

from mslesion.devtools.dicom_writer import StudyInfo
from tests.services.dicom.synthetic import write_series


@pytest.fixture(scope="session")
def study_info() -> StudyInfo:
    """Patient/study attributes of the written series (one StudyInstanceUID per session)."""
    return StudyInfo(
        patient_name="Writer^Test",
        patient_id="WRITER0001",
        patient_birth_date="19800101",
        patient_sex="F",
        study_date="20240102",
        study_time="101500",
        accession_number="ACC123",
        study_description="MRI BRAIN MS",
    )


@pytest.fixture(scope="session")
def flair_dir(tmp_path_factory: pytest.TempPathFactory, study_info: StudyInfo) -> Path:
    """A study folder holding one synthetic 64×64×20 FLAIR series (in ``study/flair``).

    Written once per session: tests only read it.
    """
    root = tmp_path_factory.mktemp("writer") / "study"
    write_series(root / "flair", study_info)
    return root
