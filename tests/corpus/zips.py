"""Zip archives for the scripts' upload path and ``services.dicom.reader.read_study``.

Each :class:`ZipCase` writes its archive into a folder and says which
:class:`~services.dicom.errors.DicomInputError` message (a regex) the reader must raise, or
``None`` when the archive is read. ``http_status`` is what a gateway answers for it.
Bombs are made by declaring sizes in the zip headers, so nothing big is ever written.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mslesion.services.dicom.reader import ZipLimits
from tests.corpus.base import mr_dataset, new_uid, part10

CENTRAL = b"PK\x01\x02"
LOCAL = b"PK\x03\x04"
TRAVERSAL_NAMES = (
    "../../etc/passwd",
    "EXPORT/../../../etc/cron.d/evil",
    "/etc/passwd",
    "C:\\Windows\\System32\\evil.dcm",
    "C:evil.dcm",
    "..\\..\\evil.dcm",
)
SMALL_LIMITS = ZipLimits(max_members=10, max_total_bytes=4 << 20, max_member_bytes=2 << 20)


@dataclass(frozen=True)
class ZipCase:
    """One archive: built into a folder; the reader's expected error regex, or None."""

    name: str
    build: Callable[[Path], Path]
    error: str | None
    http_status: int
    limits: ZipLimits | None = None


def _study_members(n: int = 3) -> list[tuple[str, bytes]]:
    study, series = new_uid(1), new_uid(2)
    return [
        (
            f"EXPORT/IM{i:04d}.dcm",
            part10(
                mr_dataset(
                    study_uid=study, series_uid=series, instance_number=i + 1, position_z=float(i)
                )
            ),
        )
        for i in range(n)
    ]


def _write(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return path


def _patch_central(path: Path, offset: int, fmt: str, value: int, index: int = 0) -> Path:
    """Overwrite a field of the ``index``-th central directory entry (sizes, flags)."""
    data = bytearray(path.read_bytes())
    at = -1
    for _ in range(index + 1):
        at = data.index(CENTRAL, at + 1)
    struct.pack_into(fmt, data, at + offset, value)
    path.write_bytes(bytes(data))
    return path


def _valid(folder: Path) -> Path:
    return _write(folder / "study.zip", [*_study_members(), ("EXPORT/README.TXT", b"hi\n")])


def _declared_huge(folder: Path) -> Path:
    """A member whose header declares 3 GiB: refused on the declaration, never inflated."""
    path = _write(folder / "declared.zip", _study_members(1))
    return _patch_central(path, 24, "<I", 3 << 30)


def _zeros(folder: Path) -> Path:
    """A real deflate bomb: 8 MiB of zeros in a few KiB (checked against SMALL_LIMITS)."""
    return _write(folder / "zeros.zip", [("a.dcm", bytes(8 << 20))])


def _many_under_member_limit(folder: Path) -> Path:
    return _write(folder / "sum.zip", [(f"m{i}.dcm", bytes(1 << 20)) for i in range(5)])


def _nested(folder: Path) -> Path:
    inner = _zeros(folder).read_bytes()
    return _write(folder / "nested.zip", [("inner/bomb.zip", inner)])


def _size_lies(folder: Path) -> Path:
    """A member that declares 200 bytes but inflates to a whole instance (CRC fails)."""
    path = _write(folder / "lies.zip", _study_members(1))
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, data.index(LOCAL) + 22, 200)
    struct.pack_into("<I", data, data.index(CENTRAL) + 24, 200)
    path.write_bytes(bytes(data))
    return path


def _encrypted(folder: Path) -> Path:
    path = _write(folder / "locked.zip", _study_members(1))
    return _patch_central(path, 8, "<H", 0x1)


def _too_many(folder: Path) -> Path:
    return _write(folder / "many.zip", [(f"f{i}.txt", b"") for i in range(20)])


def _truncated(folder: Path) -> Path:
    path = _write(folder / "cut.zip", _study_members(2))
    path.write_bytes(path.read_bytes()[:-30])  # the end-of-central-directory record is gone
    return path


def _traversal(member: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        return _write(folder / "traversal.zip", [*_study_members(1), (member, b"x")])

    return build


def zip_cases() -> list[ZipCase]:
    """Every zip case; ``limits`` None means the reader's defaults."""
    cases = [
        ZipCase("zip-valid-study", _valid, None, 200),
        ZipCase("zip-bomb-declared-3GiB", _declared_huge, "possible zip bomb", 413),
        ZipCase("zip-bomb-deflated-zeros", _zeros, "possible zip bomb", 413, SMALL_LIMITS),
        ZipCase(
            "zip-bomb-total-over-limit",
            _many_under_member_limit,
            "possible zip bomb",
            413,
            SMALL_LIMITS,
        ),
        ZipCase("zip-nested-bomb-not-expanded", _nested, "no DICOM files found", 400, SMALL_LIMITS),
        ZipCase("zip-member-size-lies", _size_lies, "cannot read the file|corrupt", 400),
        ZipCase("zip-encrypted-member", _encrypted, "encrypted", 400),
        ZipCase(
            "zip-too-many-members",
            _too_many,
            "20 members, more than the limit of 10",
            413,
            SMALL_LIMITS,
        ),
        ZipCase("zip-truncated-archive", _truncated, "neither a folder nor a zip archive", 400),
    ]
    cases += [
        ZipCase(f"zip-traversal-{i}", _traversal(name), "path traversal", 400)
        for i, name in enumerate(TRAVERSAL_NAMES)
    ]
    return cases
