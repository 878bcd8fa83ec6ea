"""Property-based fuzz of the DICOM ingest path (``read_header`` + ``store_instance``).

Hypothesis mutates valid Part 10 files (flipped, inserted and deleted bytes, cuts, element
lengths and VRs overwritten, foreign elements inserted) and checks the invariant the listener
and the gateway rely on: ingest either returns STORED/DUPLICATE or raises ``IngestError``,
never any other exception (which would become a 500 or an aborted association), and a refused
instance leaves no file, no temporary file and no row.

CI runs a bounded budget: ``MSLESION_FUZZ_EXAMPLES`` examples (default 200) on SQLite and a
fifth of them on PostgreSQL. A longer run, as documented in docs/RELIABILITY.md:

    MSLESION_FUZZ_EXAMPLES=5000 .venv/bin/pytest tests/services/test_ingest_fuzz.py -W ignore
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydicom.uid import DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian

from mslesion.services.config import Settings
from mslesion.services.ingest import IngestError, IngestResult
from mslesion.services.store.database import Database
from tests.corpus import mr_dataset, part10
from tests.services.test_ingest import counts, ingest, spool_files

EXAMPLES = int(os.environ.get("MSLESION_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # nothing written into the repository; failures print a reproducer
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SEEDS = (
    part10(mr_dataset(sop_uid="1.2.826.0.1.3680043.10.1044.88.1")),
    part10(mr_dataset(sop_uid="1.2.826.0.1.3680043.10.1044.88.2"), ImplicitVRLittleEndian),
    part10(mr_dataset(sop_uid="1.2.826.0.1.3680043.10.1044.88.3"), DeflatedExplicitVRLittleEndian),
)
LONG_VRS = {
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"SQ",
    b"SV",
    b"UC",
    b"UN",
    b"UR",
    b"UT",
    b"UV",
}
VRS = sorted(
    LONG_VRS
    | {
        b"AE",
        b"AS",
        b"AT",
        b"CS",
        b"DA",
        b"DS",
        b"DT",
        b"FD",
        b"FL",
        b"IS",
        b"LO",
        b"LT",
        b"PN",
        b"SH",
        b"SL",
        b"SS",
        b"ST",
        b"TM",
        b"UI",
        b"UL",
        b"US",
        b"ZZ",
        b"\x00\x00",
    }
)
LENGTHS = (0, 1, 2, 3, 7, 0xFF, 0xFFFF, 0xFFFFFFF0, 0xFFFFFFFF)


def element_offsets(data: bytes) -> list[int]:
    """Header offsets of the top-level elements of an explicit VR little endian file."""
    offsets, at = [], 132
    while at + 8 <= len(data):
        offsets.append(at)
        vr = data[at + 4 : at + 6]
        if vr in LONG_VRS:
            length = struct.unpack_from("<I", data, at + 8)[0]
            at += 12 + (0 if length == 0xFFFFFFFF else length)
        else:
            at += 8 + struct.unpack_from("<H", data, at + 6)[0]
    return offsets


OFFSETS = element_offsets(SEEDS[0])


@dataclass(frozen=True)
class Mutation:
    """One edit of a file's bytes."""

    kind: str
    at: int
    payload: bytes = b""
    size: int = 0

    def apply(self, data: bytes) -> bytes:
        at = min(self.at, len(data))
        if self.kind == "flip":
            return (
                data[:at] + bytes([data[at] ^ self.size]) + data[at + 1 :]
                if at < len(data)
                else data
            )
        if self.kind == "insert":
            return data[:at] + self.payload + data[at:]
        if self.kind == "delete":
            return data[:at] + data[at + self.size :]
        if self.kind == "cut":
            return data[:at]
        return data[:at] + self.payload + data[at + len(self.payload) :]  # overwrite


def _overwrite_length() -> st.SearchStrategy[Mutation]:
    def make(at: int, length: int, wide: bool) -> Mutation:
        if wide:  # a long-form VR's 4-byte length
            return Mutation("overwrite", at + 4, b"UN\0\0" + struct.pack("<I", length))
        return Mutation("overwrite", at + 6, struct.pack("<H", length & 0xFFFF))

    return st.builds(
        make,
        st.sampled_from(OFFSETS),
        st.one_of(st.sampled_from(LENGTHS), st.integers(0, 0xFFFFFFFF)),
        st.booleans(),
    )


def _overwrite_vr() -> st.SearchStrategy[Mutation]:
    vr = st.one_of(st.sampled_from(VRS), st.binary(min_size=2, max_size=2))
    return st.builds(lambda at, v: Mutation("overwrite", at + 4, v), st.sampled_from(OFFSETS), vr)


def _insert_element() -> st.SearchStrategy[Mutation]:
    def make(at: int, group: int, element: int, vr: bytes, value: bytes) -> Mutation:
        tag = struct.pack("<HH", group, element)
        if vr in LONG_VRS:
            header = tag + vr + b"\0\0" + struct.pack("<I", len(value))
        else:
            header = tag + vr + struct.pack("<H", len(value))
        return Mutation("insert", at, header + value)

    groups = st.one_of(
        st.sampled_from([0x0002, 0x0008, 0x0010, 0x0020, 0x0028, 0x7FE0, 0xFFFE]),
        st.integers(0, 0xFFFF),
    )
    return st.builds(
        make,
        st.sampled_from(OFFSETS),
        groups,
        st.integers(0, 0xFFFF),
        st.sampled_from(VRS),
        st.binary(max_size=24),
    )


def _byte_edit() -> st.SearchStrategy[Mutation]:
    position = st.integers(0, len(SEEDS[0]) + 8)
    return st.one_of(
        st.builds(lambda at, mask: Mutation("flip", at, size=mask), position, st.integers(1, 255)),
        st.builds(
            lambda at, b: Mutation("insert", at, b), position, st.binary(min_size=1, max_size=16)
        ),
        st.builds(lambda at, n: Mutation("delete", at, size=n), position, st.integers(1, 16)),
        st.builds(lambda at: Mutation("cut", at), position),
        st.builds(
            lambda at, b: Mutation("overwrite", at, b), position, st.binary(min_size=1, max_size=8)
        ),
    )


MUTATION = st.one_of(_byte_edit(), _overwrite_length(), _overwrite_vr(), _insert_element())


@st.composite
def mutated_files(draw: st.DrawFn) -> bytes:
    """A valid seed file with one to four mutations applied."""
    data = draw(st.sampled_from(SEEDS))
    for mutation in draw(st.lists(MUTATION, min_size=1, max_size=4)):
        data = mutation.apply(data)
    return data


def check_invariant(db: Database, spool: Path, data: bytes) -> None:
    """STORED/DUPLICATE or IngestError (any other exception propagates); refusals leave nothing."""
    files, rows = spool_files(spool), counts(db)
    try:
        result = ingest(db, spool, data)
    except IngestError as exc:
        event(f"refused 0x{int(exc.status):04X}")
        assert spool_files(spool) == files
        assert counts(db) == rows
        return
    event(result.value)
    assert result in (IngestResult.STORED, IngestResult.DUPLICATE)
    assert not [p for p in spool_files(spool) if p.name.startswith(".incoming-")]


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path}/fuzz.db")
    db.migrate()
    return db


@FUZZ
@given(data=mutated_files())
def test_fuzz_ingest_sqlite(data: bytes, sqlite_db: Database, tmp_path: Path) -> None:
    check_invariant(sqlite_db, tmp_path / "spool", data)


@settings(FUZZ, max_examples=max(20, EXAMPLES // 5))
@given(data=mutated_files())
def test_fuzz_ingest_postgres(data: bytes, node_settings: Settings, node_db: Database) -> None:
    check_invariant(node_db, node_settings.spool_dir, data)


def test_seeds_are_stored(sqlite_db: Database, tmp_path: Path) -> None:
    # The fuzz starts from files the node accepts, so refusals come from the mutations.
    for seed in SEEDS:
        assert ingest(sqlite_db, tmp_path / "spool", seed) is IngestResult.STORED
