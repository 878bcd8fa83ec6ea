"""The bad-input corpus against the ingest path on the real PostgreSQL.

Every case gets exactly its expected outcome; a refused instance leaves no file in the spool,
no row and no temporary file; and a valid instance sent afterwards is still stored, so one bad
instance never stops the node serving others.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mslesion.services.config import Settings
from mslesion.services.dicom.errors import DicomInputError
from mslesion.services.dicom.reader import load_series_volume, read_study
from mslesion.services.ingest import IngestError, IngestResult, read_header, store_instance
from mslesion.services.store.database import Database
from mslesion.services.store.enums import Source
from mslesion.services.store.repositories import studies
from mslesion.services.store.tables import Instance, Study
from tests.corpus import (
    DicomCase,
    Expected,
    Outcome,
    ZipCase,
    dicom_cases,
    one_study_two_patients,
    part10,
    several_patients,
    valid_instance,
    write_large_series,
    zip_cases,
)


def _param(case: DicomCase | ZipCase) -> object:
    gap = getattr(case, "gap", None)
    marks = [pytest.mark.xfail(strict=True, reason=f"services/ingest.py: {gap}")] if gap else []
    return pytest.param(case, id=case.name, marks=marks)


def ingest(db: Database, spool: Path, data: bytes) -> IngestResult:
    """What the listener and the gateway do with one instance's bytes."""
    return store_instance(db, spool, read_header(data), data, Source.STOW, "CORPUS")


def spool_files(spool: Path) -> list[Path]:
    """Every file under the spool (temporary ``.incoming-*`` files included)."""
    return sorted(p for p in spool.rglob("*") if p.is_file()) if spool.exists() else []


def counts(db: Database) -> tuple[int, int]:
    """(studies, instances) rows: a direct count, since no repository needs one."""
    with db.session() as session:
        n_studies = session.scalar(select(func.count()).select_from(Study)) or 0
        n_instances = session.scalar(select(func.count()).select_from(Instance)) or 0
    return n_studies, n_instances


def assert_outcome(db: Database, spool: Path, data: bytes, expected: Expected) -> None:
    """Ingest ``data``: exactly ``expected``, and nothing half-written when refused."""
    before = counts(db)
    if expected.outcome is Outcome.STORED:
        assert ingest(db, spool, data) is IngestResult.STORED
        assert counts(db)[1] == before[1] + 1
    else:
        with pytest.raises(IngestError) as caught:
            ingest(db, spool, data)
        assert caught.value.status is expected.status, caught.value.reason
        assert re.search(expected.reason, caught.value.reason, re.IGNORECASE), caught.value.reason
        assert counts(db) == before
    assert not [p for p in spool_files(spool) if p.name.startswith(".incoming-")]


@pytest.mark.parametrize("case", [_param(c) for c in dicom_cases()])
def test_corpus_instance(case: DicomCase, node_settings: Settings, node_db: Database) -> None:
    missing = [tool for tool in case.requires if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    spool = node_settings.spool_dir
    assert_outcome(node_db, spool, case.data(), case.expected)
    if case.expected.outcome is Outcome.REFUSED:
        assert spool_files(spool) == []
    # The node keeps serving: the next valid instance is stored as usual.
    assert ingest(node_db, spool, valid_instance()) is IngestResult.STORED


def test_refusals_never_write_outside_the_spool(node_settings: Settings, node_db: Database) -> None:
    data_dir = node_settings.data_dir
    for case in dicom_cases():
        if case.name.startswith("uid-") and not case.gap:
            with pytest.raises(IngestError):
                ingest(node_db, node_settings.spool_dir, case.data())
    written = [p for p in data_dir.parent.rglob("*") if p.is_file() and "evil" in str(p)]
    assert written == []
    assert spool_files(node_settings.spool_dir) == []


def test_duplicate_sop_instance_uid_is_idempotent(
    node_settings: Settings, node_db: Database
) -> None:
    spool = node_settings.spool_dir
    first = valid_instance(sop_uid="1.2.826.0.1.3680043.10.1044.77.1", instance_number=1)
    again = valid_instance(sop_uid="1.2.826.0.1.3680043.10.1044.77.1", instance_number=2)
    assert ingest(node_db, spool, first) is IngestResult.STORED
    assert ingest(node_db, spool, first) is IngestResult.DUPLICATE
    assert ingest(node_db, spool, again) is IngestResult.DUPLICATE  # same UID, other bytes
    assert counts(node_db) == (1, 1)
    [stored] = spool_files(spool)
    assert stored.read_bytes() == first  # the first copy stays: a duplicate never overwrites


def test_several_patients_become_separate_studies(
    node_settings: Settings, node_db: Database
) -> None:
    datasets = several_patients()
    for ds in datasets:
        assert ingest(node_db, node_settings.spool_dir, part10(ds)) is IngestResult.STORED
    with node_db.session() as session:
        found = {
            uid: studies.get_study(session, uid)
            for uid in {str(ds.StudyInstanceUID) for ds in datasets}
        }
        patients = {s.patient_id: s.instance_count for s in found.values() if s is not None}
    assert patients == {"CORPUS-A": 2, "CORPUS-B": 2}


def test_one_study_two_patients_refuses_the_contradiction(
    node_settings: Settings, node_db: Database
) -> None:
    first, second = (part10(ds) for ds in one_study_two_patients())
    assert ingest(node_db, node_settings.spool_dir, first) is IngestResult.STORED
    with pytest.raises(IngestError, match="PatientID"):
        ingest(node_db, node_settings.spool_dir, second)
    assert counts(node_db) == (1, 1)


# --------------------------------------------------------------------------- zip archives


@pytest.mark.parametrize("case", [_param(c) for c in zip_cases()])
def test_zip_case(case: ZipCase, tmp_path: Path) -> None:
    archive = case.build(tmp_path)
    if case.error is None:
        study = read_study(archive, zip_limits=case.limits)
        assert [s.n_instances for s in study.series] == [3]
        return
    with pytest.raises(DicomInputError) as caught:
        read_study(archive, zip_limits=case.limits)
    message = str(caught.value)
    assert re.search(case.error, message), message
    assert str(archive) in message  # the message names the archive it refuses


# --------------------------------------------------------------------------- 5,000 slices


@pytest.mark.slow
def test_5000_slice_series_is_read_and_stacked(tmp_path: Path) -> None:
    # The reader limits a series by voxels, not slices (MAX_SERIES_VOXELS, tested in
    # tests/services/dicom/test_reader_limits.py): 5,000 tiny slices are read and stacked.
    write_large_series(tmp_path / "series")
    study = read_study(tmp_path / "series")
    [series] = study.series
    assert series.n_instances == 5000
    volume = load_series_volume(series)
    assert volume.image.GetSize() == (8, 8, 5000)
    assert volume.image.GetSpacing() == pytest.approx((1.0, 1.0, 1.0))
