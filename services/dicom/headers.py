"""The header pass: every DICOM file of an input read without its pixel data.

Files without the ``DICM`` prefix and DICOMDIR are skipped with a reason; a second copy of
an instance is skipped as a duplicate; a file with the prefix that cannot be parsed is an
error, since it is a damaged part of the study.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from mslesion.services.dicom.attributes import number
from mslesion.services.dicom.errors import DicomInputError
from mslesion.services.dicom.sop import MEDIA_STORAGE_DIRECTORY
from mslesion.services.dicom.sources import Opener, SourceFile

REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
DICM_OFFSET = 128


@dataclass(frozen=True)
class Instance:
    """One DICOM file's header, where it lies, and its transfer syntax."""

    source: SourceFile
    header: Dataset
    transfer_syntax: str

    def uid(self, keyword: str) -> str:
        """The header's value for ``keyword`` as a stripped string, empty when absent."""
        return str(self.header.get(keyword, "")).strip()

    @property
    def instance_number(self) -> int:
        """The header's InstanceNumber, 0 when absent or not a number."""
        value = number(self.header.get("InstanceNumber"))
        return int(value) if value is not None else 0


def _read_header(source: SourceFile, opener: Opener) -> Dataset | str:
    """Header of a DICOM file, or the reason it is skipped as not being a DICOM image."""
    try:
        with opener.open(source) as fp:
            prefix = fp.read(DICM_OFFSET + 4)
            if prefix[DICM_OFFSET:] != b"DICM":
                return "not a DICOM file (no DICM prefix)"
            fp.seek(0)
            header = pydicom.dcmread(fp, stop_before_pixels=True)
            sop_class = str(header.file_meta.get("MediaStorageSOPClassUID", ""))
            if sop_class == MEDIA_STORAGE_DIRECTORY:
                return "DICOMDIR (media directory, not an image)"
            missing = [kw for kw in REQUIRED_UIDS if not str(header.get(kw, "")).strip()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError) as exc:
        raise DicomInputError(f"{source}: cannot read the file ({exc})") from exc
    except Exception as exc:  # pydicom raises many types for malformed data
        raise DicomInputError(f"{source}: corrupt DICOM file, header unreadable ({exc})") from exc
    if missing:
        raise DicomInputError(
            f"{source}: corrupt or incomplete DICOM file, missing {', '.join(missing)}"
        )
    return header


def _transfer_syntax(header: Dataset) -> str:
    return str(header.file_meta.get("TransferSyntaxUID", "")).strip()


def read_instances(sources: Iterable[SourceFile], root: Path) -> tuple[list[Instance], list[str]]:
    """Headers of ``sources``, and the skipped files (names relative to ``root``, reason)."""
    instances: list[Instance] = []
    skipped: list[str] = []
    seen: dict[str, SourceFile] = {}
    with Opener() as opener:
        for source in sources:
            header = _read_header(source, opener)
            name = _display_name(source, root)
            if isinstance(header, str):
                skipped.append(f"{name}: {header}")
                continue
            instance = Instance(source, header, _transfer_syntax(header))
            sop_uid = instance.uid("SOPInstanceUID")
            if sop_uid in seen:
                # Exports often hold the same instance twice (e.g. two copies in a zip).
                skipped.append(
                    f"{name}: duplicate of SOP instance in {_display_name(seen[sop_uid], root)}"
                )
                continue
            seen[sop_uid] = source
            instances.append(instance)
    return instances, skipped


def _display_name(source: SourceFile, root: Path) -> str:
    if source.member is not None:
        return source.member
    try:
        return str(source.path.relative_to(root))
    except ValueError:
        return str(source.path)
