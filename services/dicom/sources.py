"""Where a study's DICOM files lie: a folder tree or the members of a zip archive.

:class:`SourceFile` names one file either way; :class:`Opener` opens them, keeping each
archive open once for all its members.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from mslesion.services.dicom.errors import DicomInputError
from mslesion.services.dicom.zipguard import ZipLimits, ZipRefusedError, check_archive


@dataclass(frozen=True)
class SourceFile:
    """Where one DICOM file lies: a file on disk, or a member of a zip archive."""

    path: Path
    member: str | None = None

    def __str__(self) -> str:
        return f"{self.path}!{self.member}" if self.member is not None else str(self.path)


class Opener:
    """Opens source files, keeping each zip archive open once for all its members."""

    def __init__(self) -> None:
        self._archives: dict[Path, zipfile.ZipFile] = {}

    def open(self, source: SourceFile) -> IO[bytes]:
        """A binary stream of ``source``: the file itself, or its member of a zip archive."""
        if source.member is None:
            return source.path.open("rb")
        archive = self._archives.get(source.path)
        if archive is None:
            archive = zipfile.ZipFile(source.path)
            self._archives[source.path] = archive
        return archive.open(source.member)

    def __enter__(self) -> Opener:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for archive in self._archives.values():
            archive.close()


def folder_sources(root: Path) -> Iterator[SourceFile]:
    """Every file under ``root``, in a reproducible order."""
    # os.walk does not descend into symlinked folders, so a link cannot pull in files from
    # elsewhere on the node; sorting makes the reading order (and tie-breaks) reproducible.
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            yield SourceFile(Path(folder) / name)


def zip_sources(path: Path, limits: ZipLimits) -> list[SourceFile]:
    """Members of a zip archive, after refusing path traversal and zip-bomb sizes."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise DicomInputError(f"{path}: unreadable zip archive ({exc})") from exc
    try:
        check_archive(infos, limits)
    except ZipRefusedError as exc:
        # Name the archive: the job log may hold several inputs.
        raise ZipRefusedError(f"{path}: {exc.problem}", oversized=exc.oversized) from None
    return [SourceFile(path, info.filename) for info in infos if not info.is_dir()]
