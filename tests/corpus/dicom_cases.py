"""Single-instance bad-input cases for the ingest path (C-STORE and STOW-RS share it).

Each :class:`DicomCase` builds the bytes of one Part 10 file and says what the node must
answer. ``gap`` names, for the few cases where ``services.ingest`` does not yet answer as
expected, what it does instead; tests mark those ``xfail(strict=True)`` so a fix shows up.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import (
    UID,
    BasicTextSRStorage,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    EnhancedMRImageStorage,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    LegacyConvertedEnhancedMRImageStorage,
    SecondaryCaptureImageStorage,
    SegmentationStorage,
)

from mslesion.services.ingest import DicomStatus
from tests.corpus.base import element_offset, mr_dataset, new_uid, part10
from tests.corpus.compressed import DCMCJPEG, jpeg_mr, rle_mr
from tests.corpus.expected import Expected

STUDY_UID = (0x0020, 0x000D)
SERIES_UID = (0x0020, 0x000E)
SOP_CLASS_UID = (0x0008, 0x0016)
PATIENT_ID = (0x0010, 0x0020)
ROWS = (0x0028, 0x0010)
PHOTOMETRIC = (0x0028, 0x0004)
PIXEL_DATA = (0x7FE0, 0x0010)
TRANSFER_SYNTAX = (0x0002, 0x0010)
META_GROUP_LENGTH = (0x0002, 0x0000)

CANNOT = DicomStatus.CANNOT_UNDERSTAND
MISMATCH = DicomStatus.DATASET_DOES_NOT_MATCH
NOT_SUPPORTED = DicomStatus.SOP_CLASS_NOT_SUPPORTED

# What current services/ingest.py does instead (see the module docstring).
ESCAPES = "escapes read_header/store_instance as {} instead of IngestError"
ACCEPTS_TRUNCATED = "stored with 0x0000: read_header does not notice the file is cut short"
PG_TOO_LONG = (
    "PostgreSQL refuses the 64-character column: answered 0xA701 (transient, so the sender "
    "retries forever) and the spool file is left behind"
)


@dataclass(frozen=True)
class DicomCase:
    """One corpus instance: a name, how to build its bytes, and the expected outcome."""

    name: str
    build: Callable[[], bytes]
    expected: Expected
    requires: tuple[str, ...] = ()  # command-line tools the builder runs
    gap: str | None = None

    def data(self) -> bytes:
        """The case's Part 10 bytes (built afresh, with fresh UIDs)."""
        return self.build()


# --------------------------------------------------------------------------- byte surgery


def _valid() -> bytes:
    return part10(mr_dataset())


def _value_offset(data: bytes, tag: tuple[int, int]) -> tuple[int, int]:
    """(offset of the value, its length) of a short-form explicit VR element."""
    at = element_offset(data, tag)
    return at + 8, struct.unpack_from("<H", data, at + 6)[0]


def _cut_in_value(tag: tuple[int, int], fraction: float = 0.5) -> Callable[[], bytes]:
    def build() -> bytes:
        data = _valid()
        if tag == PIXEL_DATA:
            at = element_offset(data, tag)
            return data[: at + 12 + int((len(data) - at - 12) * fraction)]
        start, length = _value_offset(data, tag)
        return data[: start + max(1, int(length * fraction))]

    return build


def _cut_at_element(tag: tuple[int, int]) -> Callable[[], bytes]:
    def build() -> bytes:
        data = _valid()
        return data[: element_offset(data, tag)]

    return build


def _with_vr(tag: tuple[int, int], vr: bytes) -> Callable[[], bytes]:
    """Replace the VR code of an element that keeps a 2-byte length (same layout)."""

    def build() -> bytes:
        data = bytearray(_valid())
        at = element_offset(bytes(data), tag)
        data[at + 4 : at + 6] = vr
        return bytes(data)

    return build


def _us_odd_length() -> bytes:
    data = bytearray(_valid())
    at = element_offset(bytes(data), ROWS)
    data[at + 6 : at + 8] = struct.pack("<H", 3)
    data.insert(at + 10, 0)  # a 3-byte US value
    return bytes(data)


def _long_header(vr: bytes, length: int) -> Callable[[tuple[int, int]], bytes]:
    def header(tag: tuple[int, int]) -> bytes:
        return struct.pack("<HH", *tag) + vr + b"\0\0" + struct.pack("<I", length)

    return header


def _huge_pixel_length() -> bytes:
    data = bytearray(_valid())
    at = element_offset(bytes(data), PIXEL_DATA)
    data[at + 8 : at + 12] = struct.pack("<I", 0xFFFFFFF0)
    return bytes(data)


def _huge_private_before_pixels() -> bytes:
    """A private OB element declaring 0xFFFFFFF0 bytes, swallowing the pixel data."""
    data = _valid()
    at = element_offset(data, PIXEL_DATA)
    creator = struct.pack("<HH", 0x0029, 0x0010) + b"LO" + struct.pack("<H", 6) + b"CORPUS"
    huge = _long_header(b"OB", 0xFFFFFFF0)((0x0029, 0x1010))
    return data[:at] + creator + huge + data[at:]


def _un_replacing(tag: tuple[int, int], length: int) -> Callable[[], bytes]:
    def build() -> bytes:
        data = _valid()
        at = element_offset(data, tag)
        start, _size = _value_offset(data, tag)
        return data[:at] + _long_header(b"UN", length)(tag) + data[start:]

    return build


def _huge_meta_group_length() -> bytes:
    data = bytearray(_valid())
    at = element_offset(bytes(data), META_GROUP_LENGTH)
    data[at + 8 : at + 12] = struct.pack("<I", 0xFFFFFFF0)
    return bytes(data)


def _no_preamble() -> bytes:
    return _valid()[128:]  # starts with DICM


def _no_dicm_prefix() -> bytes:
    data = _valid()
    return data[:128] + b"XXXX" + data[132:]


def _raw_dataset() -> bytes:
    """The dataset alone, explicit VR little endian, as a C-STORE carries it (no file meta)."""
    ds = mr_dataset()
    del ds.file_meta
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    write_dataset(out, ds)
    return out.getvalue()


def _deflated_corrupt_stream() -> bytes:
    data = bytearray(part10(mr_dataset(), DeflatedExplicitVRLittleEndian))
    meta_end = element_offset(bytes(data), TRANSFER_SYNTAX)
    meta_end += 8 + struct.unpack_from("<H", data, meta_end + 6)[0]
    # Skip any meta elements after the transfer syntax: the meta group ends at group != 2.
    while data[meta_end : meta_end + 2] == b"\x02\x00":
        meta_end += 8 + struct.unpack_from("<H", data, meta_end + 6)[0]
    stream = zlib.compressobj(9, zlib.DEFLATED, -15).compress(b"\x07" * 64)
    data[meta_end + 4 :] = b"\xff" * 16 + stream
    return bytes(data)


def _sop_class(sop_class: str) -> Callable[[], bytes]:
    def build() -> bytes:
        return part10(mr_dataset(sop_class=sop_class))

    return build


def _structured_report() -> bytes:
    ds = mr_dataset(sop_class=BasicTextSRStorage)
    for keyword in (
        "Rows",
        "Columns",
        "PixelData",
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
        "SamplesPerPixel",
        "PhotometricInterpretation",
    ):
        delattr(ds, keyword)
    ds.Modality = "SR"
    ds.ValueType = "CONTAINER"
    return part10(ds)


def _meta_mr_dataset_ct() -> bytes:
    ds = mr_dataset()
    ds.SOPClassUID = UID(CTImageStorage)
    return part10(ds)


def _loose(ds: Dataset) -> bytes:
    """Part 10 bytes without pydicom's file-meta checks (for deliberately missing meta)."""
    out = DicomBytesIO()
    ds.preamble = b"\0" * 128
    pydicom.dcmwrite(out, ds, enforce_file_format=False)
    return out.getvalue()


def _sop_class_only_in_meta() -> bytes:
    ds = mr_dataset()
    del ds.SOPClassUID
    return _loose(ds)


def _no_sop_class() -> bytes:
    ds = mr_dataset()
    del ds.SOPClassUID
    del ds.file_meta.MediaStorageSOPClassUID
    return _loose(ds)


def _without(keyword: str) -> Callable[[], bytes]:
    def build() -> bytes:
        ds = mr_dataset()
        delattr(ds, keyword)
        return _loose(ds)

    return build


def _with(**attributes: object) -> Callable[[], bytes]:
    def build() -> bytes:
        ds = mr_dataset()
        for keyword, value in attributes.items():
            setattr(ds, keyword, value)
        return _loose(ds)

    return build


def _syntax(transfer_syntax: str) -> Callable[[], bytes]:
    def build() -> bytes:
        return part10(mr_dataset(), transfer_syntax)

    return build


def _jpeg(mode: str) -> Callable[[], bytes]:
    def build() -> bytes:
        return jpeg_mr(mode)

    return build


# --------------------------------------------------------------------------- the corpus


def _stored(name: str, build: Callable[[], bytes], **kw: object) -> DicomCase:
    return DicomCase(name, build, Expected.stored(), **kw)  # type: ignore[arg-type]


def _refused(
    name: str, build: Callable[[], bytes], status: DicomStatus, reason: str, **kw: object
) -> DicomCase:
    return DicomCase(name, build, Expected.refused(status, reason), **kw)  # type: ignore[arg-type]


def _valid_and_tolerated() -> list[DicomCase]:
    return [
        _stored("valid-mr", _valid),
        _stored("enhanced-mr-sop-class", _sop_class(EnhancedMRImageStorage)),
        _stored("legacy-converted-enhanced-mr", _sop_class(LegacyConvertedEnhancedMRImageStorage)),
        _stored("sop-class-only-in-file-meta", _sop_class_only_in_meta),
        _stored("study-date-not-a-date", _with(StudyDate="notadate")),
        _stored("file-meta-group-length-0xFFFFFFF0", _huge_meta_group_length),
    ]


def _transfer_syntaxes() -> list[DicomCase]:
    return [
        _stored("ts-implicit-vr-little-endian", _syntax(ImplicitVRLittleEndian)),
        _stored("ts-deflated-explicit-vr-little-endian", _syntax(DeflatedExplicitVRLittleEndian)),
        _stored("ts-explicit-vr-big-endian", _syntax(ExplicitVRBigEndian)),
        _stored("ts-rle-lossless", rle_mr),
        _stored("ts-jpeg-baseline", _jpeg("baseline"), requires=(DCMCJPEG,)),
        _stored("ts-jpeg-lossless-sv1", _jpeg("lossless"), requires=(DCMCJPEG,)),
        _refused(
            "ts-deflated-corrupt-stream",
            _deflated_corrupt_stream,
            CANNOT,
            "readable|not a valid stream",
        ),
    ]


def _not_part10() -> list[DicomCase]:
    return [
        _refused("empty-body", lambda: b"", CANNOT, "not a readable DICOM"),
        _refused("not-dicom-pdf", lambda: b"%PDF-1.4\n" + b"x" * 400, CANNOT, "DICM"),
        _refused("no-preamble-dicm-first", _no_preamble, CANNOT, "DICM"),
        _refused("preamble-without-dicm-prefix", _no_dicm_prefix, CANNOT, "DICM"),
        _refused("raw-dataset-without-file-meta", _raw_dataset, CANNOT, "DICM"),
    ]


def _truncated() -> list[DicomCase]:
    return [
        _refused("truncated-in-preamble", lambda: _valid()[:64], CANNOT, "DICM"),
        _refused(
            "truncated-after-dicm-prefix",
            lambda: _valid()[:132],
            CANNOT,
            "meta|truncat",
        ),
        _refused(
            "truncated-in-file-meta",
            _cut_in_value(TRANSFER_SYNTAX),
            CANNOT,
            "truncat",
        ),
        _refused(
            "truncated-in-uid-value",
            _cut_in_value(SERIES_UID),
            CANNOT,
            "truncat",
        ),
        _refused(
            "truncated-in-data-element",
            _cut_in_value(PHOTOMETRIC),
            CANNOT,
            "truncat",
        ),
        _refused(
            "truncated-before-pixel-data",
            _cut_at_element(PIXEL_DATA),
            CANNOT,
            "pixel data",
        ),
        _refused(
            "truncated-in-pixel-data",
            _cut_in_value(PIXEL_DATA),
            CANNOT,
            "truncat",
        ),
    ]


def _wrong_vrs_and_lengths() -> list[DicomCase]:
    return [
        _refused(
            "vr-bogus-code-on-patient-id",
            _with_vr(PATIENT_ID, b"ZZ"),
            CANNOT,
            "not a readable DICOM",
        ),
        _refused(
            "vr-bogus-code-on-study-uid",
            _with_vr(STUDY_UID, b"ZZ"),
            CANNOT,
            "not a readable DICOM",
        ),
        _refused(
            "vr-fd-on-sop-class-uid",
            _with_vr(SOP_CLASS_UID, b"FD"),
            CANNOT,
            "not a readable DICOM",
        ),
        _refused(
            "vr-us-with-odd-length",
            _us_odd_length,
            CANNOT,
            "not a readable DICOM",
        ),
        _refused(
            "length-0xFFFFFFF0-on-pixel-data",
            _huge_pixel_length,
            CANNOT,
            "truncat",
        ),
        _refused(
            "length-0xFFFFFFF0-on-private-ob",
            _huge_private_before_pixels,
            CANNOT,
            "truncat",
        ),
        _refused(
            "length-0xFFFFFFF0-on-study-uid",
            _un_replacing(STUDY_UID, 0xFFFFFFF0),
            CANNOT,
            "truncat",
        ),
        _refused(
            "undefined-length-on-study-uid",
            _un_replacing(STUDY_UID, 0xFFFFFFFF),
            CANNOT,
            "not a readable DICOM",
        ),
    ]


def _sop_classes() -> list[DicomCase]:
    return [
        _refused("sop-class-ct", _sop_class(CTImageStorage), NOT_SUPPORTED, "not MR"),
        _refused(
            "sop-class-secondary-capture",
            _sop_class(SecondaryCaptureImageStorage),
            NOT_SUPPORTED,
            "not MR",
        ),
        _refused("sop-class-basic-text-sr", _structured_report, NOT_SUPPORTED, "not MR"),
        _refused(
            "sop-class-segmentation", _sop_class(SegmentationStorage), NOT_SUPPORTED, "not MR"
        ),
        _refused("sop-class-missing", _no_sop_class, NOT_SUPPORTED, r"\(missing\)"),
        _refused(
            "sop-class-meta-mr-dataset-ct",
            _meta_mr_dataset_ct,
            NOT_SUPPORTED,
            CTImageStorage.replace(".", r"\."),
        ),
    ]


def _identifiers() -> list[DicomCase]:
    uid_cases = {
        "uid-with-letters": ("StudyInstanceUID", "1.2.abc.4"),
        "uid-over-64-chars": ("SeriesInstanceUID", "1." + "2" * 70),
        "uid-path-traversal-study": ("StudyInstanceUID", "../../../../tmp/evil"),
        "uid-path-traversal-sop": ("SOPInstanceUID", "1.2.3/../../../evil"),
        "uid-absolute-path": ("StudyInstanceUID", "/etc/passwd"),
        "uid-windows-drive": ("SeriesInstanceUID", "C:/Windows/evil"),
        "uid-multi-valued": ("StudyInstanceUID", "1.2.3\\1.2.4"),
        "uid-trailing-dot": ("SOPInstanceUID", "1.2.3."),
    }
    cases = [
        _refused(name, _with(**{keyword: value}), MISMATCH, f"{keyword} is not a valid DICOM UID")
        for name, (keyword, value) in uid_cases.items()
    ]
    for keyword in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        cases.append(_refused(f"missing-{keyword}", _without(keyword), MISMATCH, keyword))
    cases += [
        _refused(
            "patient-id-over-64-chars",
            _with(PatientID="P" * 100),
            MISMATCH,
            "PatientID",
        ),
        _refused(
            "patient-id-with-nul",
            _with(PatientID="AB\0CD"),
            MISMATCH,
            "PatientID",
        ),
    ]
    return cases


def dicom_cases() -> list[DicomCase]:
    """Every single-instance case of the corpus, valid ones included."""
    return [
        *_valid_and_tolerated(),
        *_transfer_syntaxes(),
        *_not_part10(),
        *_truncated(),
        *_wrong_vrs_and_lengths(),
        *_sop_classes(),
        *_identifiers(),
    ]


def valid_instance(**kwargs: object) -> bytes:
    """A valid MR instance (fresh UIDs unless given) to check the node still serves."""
    return part10(mr_dataset(**kwargs))  # type: ignore[arg-type]


__all__ = ["DicomCase", "dicom_cases", "new_uid", "valid_instance"]
