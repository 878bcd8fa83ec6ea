"""Fixtures of the DICOM ingest tests: a study info with traceable patient data, small series.

Series are written once per session and copied for each test, which may then damage its copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mslesion.devtools.dicom_writer import StudyInfo
from tests.services.dicom.synthetic import T1_PROTOCOL, volume, write_series


@pytest.fixture(scope="session")
def _templates(tmp_path_factory: pytest.TempPathFactory, study_info: StudyInfo) -> Path:
    root = tmp_path_factory.mktemp("dicom-templates")
    write_series(root / "flair", study_info)
    write_series(
        root / "t1", study_info, description="t1_mprage_sag", number=2,
        protocol=T1_PROTOCOL, data=volume(seed=1),
    )  # fmt: skip
    return root


@pytest.fixture
def flair_dir(tmp_path: Path, _templates: Path) -> Path:
    """A study folder holding one synthetic 64×64×20 FLAIR series (in ``study/flair``)."""
    shutil.copytree(_templates / "flair", tmp_path / "study" / "flair")
    return tmp_path / "study"


@pytest.fixture
def study_dir(flair_dir: Path, _templates: Path) -> Path:
    """The FLAIR study folder plus a 3D T1 series (in ``study/t1``)."""
    shutil.copytree(_templates / "t1", flair_dir / "t1")
    return flair_dir
