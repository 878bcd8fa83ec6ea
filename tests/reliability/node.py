"""Pieces of a node for the fault tests: DICOM sends that report the status, spool/database
consistency checks, and small MR instances."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import MRImageStorage, Verification  # type: ignore[attr-defined]
from sqlalchemy import select

from mslesion.services.config import Settings
from mslesion.services.store.database import Database
from mslesion.services.store.tables import Instance
from tests.api.stow_body import CONTENT_TYPE, multipart

SENDER_AET = "FAULTSCU"
STOW_HEADERS = {"Content-Type": CONTENT_TYPE, "Accept": "application/dicom+json"}

__all__ = ["CONTENT_TYPE", "STOW_HEADERS", "multipart"]


@dataclass(frozen=True)
class StoreAnswer:
    """The C-STORE response status and its Error Comment."""

    status: int
    comment: str


def c_store(port: int, path: Path, called: str = "MSLESION") -> StoreAnswer:
    """Send one file in its own association; the status the listener answered."""
    ds = dcmread(path)
    ae = AE(ae_title=SENDER_AET)
    ae.add_requested_context(MRImageStorage, str(ds.file_meta.TransferSyntaxUID))
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    assert assoc.is_established, "the listener refused the association"
    try:
        rsp: Dataset = assoc.send_c_store(ds)
    finally:
        assoc.release()
    assert "Status" in rsp, "no C-STORE response (association aborted)"
    return StoreAnswer(int(rsp.Status), str(rsp.get("ErrorComment", "")))


def c_echo(port: int, called: str = "MSLESION") -> int:
    """C-ECHO status (0x0000 when the listener is up)."""
    ae = AE(ae_title=SENDER_AET)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    assert assoc.is_established, "the listener refused the association"
    try:
        rsp: Dataset = assoc.send_c_echo()
    finally:
        assoc.release()
    return int(rsp.Status)


def instance_rows(db: Database) -> dict[str, Instance]:
    """SOP Instance UID -> its instances row."""
    with db.session() as session:
        return {row.sop_instance_uid: row for row in session.scalars(select(Instance))}


def spool_files(settings: Settings) -> list[Path]:
    """Every file under the spool that carries a final name (not a hidden staging file)."""
    root = settings.spool_dir
    if not root.exists():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def assert_spool_matches_database(settings: Settings, db: Database) -> dict[str, Instance]:
    """Every visible spool file has a row, every row has its whole file; returns the rows."""
    rows = instance_rows(db)
    by_path = {row.path: row for row in rows.values()}
    root = settings.spool_dir
    visible = {str(p.relative_to(root)) for p in spool_files(settings)}
    assert visible == set(by_path), (
        f"files without a row: {sorted(visible - set(by_path))}; "
        f"rows without a file: {sorted(set(by_path) - visible)}"
    )
    for rel, row in by_path.items():
        path = root / rel
        assert path.stat().st_size == row.size_bytes, f"{rel}: size differs from its row"
        ds = dcmread(path)  # whole, decodable, and the instance the row names
        assert str(ds.SOPInstanceUID) == row.sop_instance_uid
        assert len(ds.PixelData) == ds.Rows * ds.Columns * 2
    return rows
