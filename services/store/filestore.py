"""Durable files: the DICOM spool and the results store.

Paths are built only from validated DICOM UIDs or server-made job ids, never from names a
client sent. A file becomes visible only once complete: it is written to a temporary name,
fsynced, renamed into place and the folder fsynced, so a crash leaves either the whole file
or nothing under the final name.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

from mslesion.services.errors import InputError, MSLesionError

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


class StorageFullError(MSLesionError, OSError):
    """The spool or results volume has no space left (ENOSPC/EDQUOT)."""

    http_status = 507  # Insufficient Storage


def check_uid(uid: str, what: str) -> str:
    """Return ``uid`` if it is a valid DICOM UID (digits and dots, at most 64 chars)."""
    if not uid or len(uid) > 64 or not _UID.fullmatch(uid):
        raise InputError(f"{what} is not a valid DICOM UID: {uid[:80]!r}")
    return uid


def spool_relpath(study_uid: str, series_uid: str, sop_uid: str) -> Path:
    """Spool location of one instance, relative to the spool root."""
    return Path(
        check_uid(study_uid, "StudyInstanceUID"),
        check_uid(series_uid, "SeriesInstanceUID"),
        check_uid(sop_uid, "SOPInstanceUID") + ".dcm",
    )


def write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably (temp file, fsync, rename, dir fsync).

    Raises :class:`StorageFullError` when the volume is full; no partial file is left behind.
    """
    publish(stage_durably(path, data), path)


def stage_durably(path: Path, data: bytes) -> Path:
    """Write ``data`` to a hidden fsynced temporary file beside ``path``; return its path.

    Nothing is visible under ``path`` until :func:`publish`; :func:`discard` drops it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        _unlink_quietly(tmp)
        if exc.errno in (28, 122):  # ENOSPC, EDQUOT
            raise StorageFullError(exc.errno, "no space left on the storage volume") from exc
        raise
    return Path(tmp)


def publish(staged: Path, path: Path) -> None:
    """Atomically give a staged file its final name, durably."""
    os.replace(staged, path)
    fsync_dir(path.parent)


def discard(staged: Path) -> None:
    """Remove a staged file that will not be published (no error if already gone)."""
    _unlink_quietly(str(staged))


def fsync_dir(folder: Path) -> None:
    """Make a rename or create in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def job_result_dir(results_root: Path, job_id: str) -> Path:
    """Folder of one job's results; ``job_id`` is a server-made UUID, checked again here."""
    if not re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", job_id):
        raise InputError(f"not a job id: {job_id[:40]!r}")
    return results_root / job_id
