"""Fixtures of the dev-tool tests: one synthetic FLAIR series written by the DICOM writer, and
one real clinical case prepared as for training."""

from __future__ import annotations

from pathlib import Path

import pytest

from mslesion.devtools.dicom_writer import StudyInfo
from mslesion.devtools.prepare import PreparedCase, prepare_dataset
from tests.services.dicom.synthetic import write_series


@pytest.fixture(scope="session")
def flair_dir(tmp_path_factory: pytest.TempPathFactory, study_info: StudyInfo) -> Path:
    """A study folder holding one synthetic 64×64×20 FLAIR series (in ``study/flair``).

    Written once per session: tests only read it.
    """
    root = tmp_path_factory.mktemp("writer") / "study"
    write_series(root / "flair", study_info)
    return root


CASE = "101228"  # insights-ms: 2D axial FLAIR 0.9 x 0.9 x ~7 mm with T1 and T2


@pytest.fixture(scope="session")
def prepared(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> PreparedCase:
    """Insights-ms case 101228 prepared as ``mslesion prepare`` prepares training cases."""
    source = tmp_path_factory.mktemp("dataset")
    (source / CASE).symlink_to(shared_data / "insights-ms" / CASE)
    (case,) = prepare_dataset(source, tmp_path_factory.mktemp("prepared"))
    return case
