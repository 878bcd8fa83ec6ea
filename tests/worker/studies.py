"""Studies for the worker tests, ingested the way the listener and gateway ingest them."""

from __future__ import annotations

from pathlib import Path

from mslesion.devtools.dicom_writer import StudyInfo
from mslesion.services.config import Settings
from mslesion.services.ingest import IngestResult, read_header, store_instance
from mslesion.services.store.database import Database
from mslesion.services.store.enums import Source
from tests.services.dicom.synthetic import T1_PROTOCOL, write_series


def ingest_folder(db: Database, settings: Settings, folder: Path) -> str:
    """Store every DICOM file under ``folder`` in the node's spool; the StudyInstanceUID."""
    study_uids = set()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        ds = read_header(data)
        result = store_instance(db, settings.spool_dir, ds, data, Source.UPLOAD, None)
        assert result is IngestResult.STORED
        study_uids.add(str(ds.StudyInstanceUID))
    assert len(study_uids) == 1, study_uids
    return study_uids.pop()


def write_t1_only_study(folder: Path) -> Path:
    """A small synthetic study with one T1 series and no FLAIR."""
    info = StudyInfo(patient_id="NOFLAIR01", patient_name="NO^FLAIR", study_date="20240102")
    write_series(folder, info, description="SAG T1 MPRAGE", number=3, protocol=T1_PROTOCOL)
    return folder
