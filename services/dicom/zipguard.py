"""The checks a zip archive passes before any member is read, for every path that takes zips.

An archive is refused whole when a member names an absolute path or a ``..`` component
(path traversal), when a member is encrypted, or when its central directory declares more
members or bytes than :class:`ZipLimits` allow (a zip bomb is refused before it inflates).
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from mslesion.services.config import Settings
from mslesion.services.dicom.errors import DicomInputError


def _setting_default(name: str) -> int:
    # The numbers live in Settings alone; a reader called without settings uses the same ones.
    return int(Settings.model_fields[name].default)


@dataclass(frozen=True)
class ZipLimits:
    """Bounds on a zip archive, so a zip bomb is refused before it is decompressed."""

    max_members: int = _setting_default("max_zip_members")
    max_total_bytes: int = _setting_default("max_zip_expanded_bytes")
    max_member_bytes: int = _setting_default("max_zip_member_bytes")

    @classmethod
    def from_settings(cls, settings: Settings) -> ZipLimits:
        """The limits a node's settings configure."""
        return cls(
            max_members=settings.max_zip_members,
            max_total_bytes=settings.max_zip_expanded_bytes,
            max_member_bytes=settings.max_zip_member_bytes,
        )


class ZipRefusedError(DicomInputError):
    """An archive refused by :func:`check_archive`.

    ``oversized`` is True for a possible zip bomb (too many members or bytes), which the
    gateway answers with 413; the other refusals are malformed requests (400).
    """

    def __init__(self, problem: str, *, oversized: bool) -> None:
        self.oversized = oversized
        super().__init__(problem)


def _unsafe_member(name: str) -> bool:
    """True for a member name with an absolute path, a drive letter or a '..' component."""
    normalised = name.replace("\\", "/")
    parts = PurePosixPath(normalised).parts
    has_drive = len(normalised) > 1 and normalised[1] == ":"
    return normalised.startswith("/") or has_drive or ".." in parts


def check_archive(infos: Sequence[zipfile.ZipInfo], limits: ZipLimits) -> None:
    """Refuse the archive whose central directory lists ``infos`` (folders included)."""
    if len(infos) > limits.max_members:
        raise ZipRefusedError(
            f"zip archive has {len(infos)} members, more than the limit of {limits.max_members}",
            oversized=True,
        )
    unsafe = [info.filename for info in infos if _unsafe_member(info.filename)]
    if unsafe:
        raise ZipRefusedError(
            "zip member(s) with an absolute path or a '..' component (path traversal), "
            f"archive refused: {', '.join(repr(n) for n in unsafe[:5])}",
            oversized=False,
        )
    encrypted = [info.filename for info in infos if info.flag_bits & 0x1]
    if encrypted:
        raise ZipRefusedError(
            f"encrypted zip member(s), e.g. {encrypted[0]!r}: send the archive without a password",
            oversized=False,
        )
    total = sum(info.file_size for info in infos)
    too_big = any(info.file_size > limits.max_member_bytes for info in infos)
    if total > limits.max_total_bytes or too_big:
        raise ZipRefusedError(
            f"zip archive expands to {total} bytes (limits: {limits.max_total_bytes} in all, "
            f"{limits.max_member_bytes} per member): refused as a possible zip bomb",
            oversized=True,
        )
