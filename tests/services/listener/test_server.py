"""The listener against dcmtk's echoscu/storescu as the real peer, on the real PostgreSQL."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import (
    UID,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)
from pynetdicom import AE
from pynetdicom.sop_class import MRImageStorage  # type: ignore[attr-defined]
from sqlalchemy import select

from mslesion.services.config import Settings
from mslesion.services.ingest import DicomStatus
from mslesion.services.listener import Listener
from mslesion.services.store.database import Database
from mslesion.services.store.enums import Source
from mslesion.services.store.tables import Instance, Study
from tests.dicom_tools import require_tool
from tests.services.listener.conftest import SENDER_AET, storescu
from tests.services.listener.instances import PATIENT_ID, PATIENT_NAME, instance, write_series


def _instances(db: Database) -> list[Instance]:
    with db.session() as session:
        return list(session.scalars(select(Instance)))


def _spooled(settings: Settings, ds_path: Path) -> Path:
    ds = dcmread(ds_path, stop_before_pixels=True)
    return (
        settings.spool_dir / ds.StudyInstanceUID / ds.SeriesInstanceUID / f"{ds.SOPInstanceUID}.dcm"
    )


def test_echoscu_succeeds(listener: Listener) -> None:
    echoscu = require_tool("echoscu")
    result = subprocess.run(
        [echoscu, "-aet", SENDER_AET, "-aec", "MSLESION", "127.0.0.1", str(listener.port)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_storescu_series_is_stored_durably_and_recorded(
    listener: Listener, node_settings: Settings, node_db: Database, tmp_path: Path
) -> None:
    files = write_series(tmp_path / "series", 6)

    result = storescu(listener.port, files)

    assert result.returncode == 0, result.stderr
    rows = _instances(node_db)
    assert len(rows) == 6
    for path in files:
        sent, stored = dcmread(path), dcmread(_spooled(node_settings, path))
        assert stored == sent  # every element as sent, pixel data included
        assert stored.file_meta.MediaStorageSOPInstanceUID == sent.SOPInstanceUID
        assert stored.file_meta.TransferSyntaxUID == sent.file_meta.TransferSyntaxUID
    with node_db.session() as session:
        study = session.scalars(select(Study)).one()
        assert (study.instance_count, study.source, study.calling_aet) == (
            6,
            Source.DIMSE,
            SENDER_AET,
        )
    assert not list(node_settings.spool_dir.rglob(".incoming-*"))  # no temporary leftovers


def test_resending_the_same_files_is_idempotent(
    listener: Listener, node_settings: Settings, node_db: Database, tmp_path: Path
) -> None:
    files = write_series(tmp_path / "series", 4)
    assert storescu(listener.port, files).returncode == 0

    again = storescu(listener.port, files)

    assert again.returncode == 0, again.stderr  # storescu exits non-zero on a failure status
    assert len(_instances(node_db)) == 4
    with node_db.session() as session:
        assert session.scalars(select(Study.instance_count)).one() == 4


@pytest.mark.parametrize(
    ("encoder", "propose", "syntax"),
    [
        (["dcmcrle"], "-xr", RLELossless),
        (["dcmcjpls"], "-xt", JPEGLSLossless),
        (["dcmcjpeg"], "-xs", JPEGLosslessSV1),
        (["dcmconv", "+tb"], "-xb", ExplicitVRBigEndian),
        (None, "-xd", DeflatedExplicitVRLittleEndian),  # storescu deflates on the fly
    ],
)
def test_common_transfer_syntaxes_are_stored_as_sent(
    listener: Listener,
    node_settings: Settings,
    tmp_path: Path,
    encoder: list[str] | None,
    propose: str,
    syntax: UID,
) -> None:
    (path,) = write_series(tmp_path / "series", 1)
    if encoder is not None:  # dcmtk's own encoder makes the compressed file storescu sends
        encoded = tmp_path / "encoded.dcm"
        tool, *options = encoder
        subprocess.run(
            [require_tool(tool), *options, str(path), str(encoded)], check=True, timeout=60
        )
        path = encoded
    result = subprocess.run(
        ["storescu", propose, "-aec", "MSLESION", "127.0.0.1", str(listener.port), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    stored = dcmread(_spooled(node_settings, path))
    assert stored.file_meta.TransferSyntaxUID == syntax
    assert (stored.Rows, stored.Columns) == (16, 16)


def test_unknown_calling_ae_is_rejected(
    node_settings: Settings, node_db: Database, tmp_path: Path
) -> None:
    settings = node_settings.model_copy(update={"allowed_calling_aets": ["PACS1"]})
    server = Listener(settings, node_db)
    port = server.start()
    try:
        files = write_series(tmp_path / "series", 1)
        refused = storescu(port, files, calling="STRANGER")
        allowed = storescu(port, files, calling="PACS1")
    finally:
        server.stop()

    assert refused.returncode != 0
    assert "Association Rejected" in refused.stderr
    assert "Calling AE Title Not Recognized" in refused.stderr
    assert allowed.returncode == 0, allowed.stderr


def test_wrong_called_ae_is_rejected(listener: Listener, node_db: Database, tmp_path: Path) -> None:
    result = storescu(listener.port, write_series(tmp_path / "series", 1), called="OTHERNODE")

    assert result.returncode != 0
    assert "Called AE Title Not Recognized" in result.stderr
    assert _instances(node_db) == []


def test_non_mr_sop_class_is_not_accepted(
    listener: Listener, node_db: Database, tmp_path: Path
) -> None:
    ct = write_series(tmp_path / "ct", 2, sop_class=CTImageStorage)

    result = storescu(listener.port, ct)

    assert result.returncode != 0
    assert "no presentation context" in result.stderr.lower()
    assert _instances(node_db) == []


def _c_store(port: int, path: Path) -> tuple[int, str]:
    """Send one file with a pynetdicom SCU; the C-STORE status and error comment."""
    ae = AE(ae_title=SENDER_AET)
    ae.add_requested_context(MRImageStorage)
    assoc = ae.associate("127.0.0.1", port, ae_title="MSLESION")
    assert assoc.is_established
    try:
        rsp = assoc.send_c_store(dcmread(path))
    finally:
        assoc.release()
    return int(rsp.Status), str(rsp.get("ErrorComment", ""))


def test_unwritable_spool_answers_out_of_resources(
    listener: Listener, node_settings: Settings, node_db: Database, tmp_path: Path
) -> None:
    (path,) = write_series(tmp_path / "series", 1)
    # The spool turns into a regular file: no folder can be created under it, even as root.
    shutil.rmtree(node_settings.spool_dir)
    node_settings.spool_dir.write_bytes(b"not a folder")

    status, comment = _c_store(listener.port, path)

    assert status == DicomStatus.OUT_OF_RESOURCES == 0xA700
    assert "could not store" in comment
    assert node_settings.spool_dir.is_file()  # nothing written anywhere
    assert _instances(node_db) == []


def test_unreachable_database_answers_out_of_resources_db(
    node_settings: Settings, tmp_path: Path
) -> None:
    settings = node_settings.model_copy(
        update={"database_url": "postgresql+psycopg://postgres@localhost:1/x"}
    )
    db = Database(settings.resolved_database_url())
    server = Listener(settings, db)
    port = server.start()
    try:
        (path,) = write_series(tmp_path / "series", 1)
        status, comment = _c_store(port, path)
    finally:
        server.stop()
        db.dispose()

    assert status == DicomStatus.OUT_OF_RESOURCES_DB == 0xA701
    assert "retry later" in comment
    assert [p for p in settings.spool_dir.rglob("*") if p.is_file()] == []


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_invalid_uid_is_dataset_does_not_match(listener: Listener, node_db: Database) -> None:
    ds = instance("1.2.3", "1.2.3.4", 1)
    ds.StudyInstanceUID = "not a uid"  # decodes, but cannot name a spool folder

    ae = AE(ae_title=SENDER_AET)
    ae.add_requested_context(MRImageStorage)
    assoc = ae.associate("127.0.0.1", listener.port, ae_title="MSLESION")
    assert assoc.is_established
    try:
        rsp = assoc.send_c_store(ds)
    finally:
        assoc.release()

    assert int(rsp.Status) == DicomStatus.DATASET_DOES_NOT_MATCH
    assert "StudyInstanceUID" in str(rsp.ErrorComment)
    assert _instances(node_db) == []


def test_no_patient_identifier_in_any_log_line(
    listener: Listener, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = write_series(tmp_path / "series", 2)
    caplog.set_level(logging.DEBUG)

    assert storescu(listener.port, files).returncode == 0
    assert storescu(listener.port, files, called="WRONG").returncode != 0

    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "C-STORE from MODALITY1" in text  # the listener did log, at DEBUG
    for identifier in (PATIENT_NAME, PATIENT_ID, "19700101", "TESTPATIENT"):
        assert identifier not in text


def test_associations_over_the_cap_are_rejected(
    node_settings: Settings, node_db: Database, tmp_path: Path
) -> None:
    settings = node_settings.model_copy(update={"max_associations": 1})
    server = Listener(settings, node_db)
    port = server.start()
    ae = AE(ae_title=SENDER_AET)
    ae.add_requested_context(MRImageStorage)
    first = ae.associate("127.0.0.1", port, ae_title="MSLESION")
    try:
        assert first.is_established
        second = storescu(port, write_series(tmp_path / "series", 1))
    finally:
        first.release()
    later = write_series(tmp_path / "later", 1)
    for _ in range(50):  # the server frees the slot when the association's thread has ended
        after = storescu(port, later)
        if after.returncode == 0:
            break
        time.sleep(0.1)
    server.stop()

    assert second.returncode != 0
    assert "Local Limit Exceeded" in second.stderr
    assert after.returncode == 0, after.stderr  # the slot is free again once released
