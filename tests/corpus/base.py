"""Valid base instances the corpus damages: small MR images built with pydicom.

Every bad case starts from one of these, so the damage under test is the only thing that
differs from an instance the node stores.
"""

from __future__ import annotations

import io
import itertools

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    MRImageStorage,
)

ROOT = "1.2.826.0.1.3680043.10.1044"  # a fixed root; suffixes are deterministic counters
_counter = itertools.count(1)


def new_uid(kind: int = 9) -> str:
    """A fresh, valid, deterministic-per-process UID (digits and dots, under 64 chars)."""
    return f"{ROOT}.{kind}.{next(_counter)}"


def mr_dataset(
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    patient_id: str = "CORPUS01",
    sop_class: str = MRImageStorage,
    rows: int = 8,
    columns: int = 8,
    instance_number: int = 1,
    position_z: float = 0.0,
) -> Dataset:
    """A minimal MR Image Storage dataset with 16-bit pixel data (file meta included)."""
    sop_uid = sop_uid or new_uid(3)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = UID(sop_class)
    ds.SOPInstanceUID = UID(sop_uid)
    ds.StudyDate = "20240131"
    ds.Modality = "MR"
    ds.PatientName = "Corpus^Test"
    ds.PatientID = patient_id
    ds.StudyInstanceUID = UID(study_uid or new_uid(1))
    ds.SeriesInstanceUID = UID(series_uid or new_uid(2))
    ds.SeriesNumber = 1
    ds.InstanceNumber = instance_number
    ds.ImagePositionPatient = [0.0, 0.0, position_z]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [1.0, 1.0]
    ds.SliceThickness = 1.0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    pixels = (np.arange(rows * columns, dtype=np.uint16) * 7 + instance_number) % 4096
    ds.PixelData = pixels.reshape(rows, columns).tobytes()
    return ds


def part10(ds: Dataset, transfer_syntax: str = ExplicitVRLittleEndian) -> bytes:
    """``ds`` as a DICOM Part 10 file (preamble, ``DICM``, file meta) in ``transfer_syntax``.

    Compressed syntaxes are not handled here: compress the dataset first (see
    :mod:`tests.corpus.compressed`).
    """
    ds = ds.copy()
    ds.file_meta = FileMetaDataset(ds.file_meta)
    ds.file_meta.TransferSyntaxUID = UID(transfer_syntax)
    out = io.BytesIO()
    if transfer_syntax == ExplicitVRBigEndian:
        # pydicom converts to the retired big endian only when forced, which it allows only
        # without its file-format checks; the preamble makes it write a Part 10 file still.
        ds.preamble = b"\0" * 128
        if ds.get("BitsAllocated") == 16 and "PixelData" in ds:  # OW: pydicom does not swap
            ds.PixelData = np.frombuffer(ds.PixelData, "<u2").astype(">u2").tobytes()
        pydicom.dcmwrite(out, ds, implicit_vr=False, little_endian=False, force_encoding=True)
    else:
        pydicom.dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()


def valid_mr_bytes(**kwargs: object) -> bytes:
    """A valid explicit VR little endian MR instance with fresh UIDs."""
    return part10(mr_dataset(**kwargs))  # type: ignore[arg-type]


def element_offset(data: bytes, tag: tuple[int, int], *, start: int = 132) -> int:
    """Byte offset of the header of element ``tag`` in an explicit VR little endian file.

    Searches for the tag followed by two upper-case VR letters, which in the corpus's small
    base files matches only the real element header.
    """
    group, element = tag
    needle = group.to_bytes(2, "little") + element.to_bytes(2, "little")
    at = data.find(needle, start)
    while at >= 0:
        vr = data[at + 4 : at + 6]
        if len(vr) == 2 and vr.isalpha() and vr.isupper():
            return at
        at = data.find(needle, at + 1)
    raise ValueError(f"element ({group:04X},{element:04X}) not found")
