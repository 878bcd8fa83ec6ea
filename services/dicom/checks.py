"""Whether a series can be assembled at all: modality, SOP class, decodable transfer syntax."""

from __future__ import annotations

from pydicom.pixels import get_decoder
from pydicom.uid import UID, UncompressedTransferSyntaxes

from mslesion.services.dicom.sop import SUPPORTED_SOP_CLASSES
from mslesion.services.dicom.study import Series

# Uncompressed syntaxes are decoded by pydicom itself; others need a decoder plugin.
NATIVE_TRANSFER_SYNTAXES = frozenset(UncompressedTransferSyntaxes)


def transfer_syntax_problem(uid: str) -> str | None:
    """Why pixel data in this transfer syntax cannot be decoded here, or None if it can."""
    if uid in NATIVE_TRANSFER_SYNTAXES:
        return None
    if not uid:
        return "no transfer syntax in the file meta information"
    ts = UID(uid)
    label = uid_label(uid)
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        return f"unsupported transfer syntax {label}"
    if not decoder.is_available:
        return f"transfer syntax {label} needs a decoder plugin that is not installed"
    return None


def uid_label(uid: str) -> str:
    """A UID with its DICOM name when pydicom knows one, e.g. "RLE Lossless (1.2.840...)"."""
    name = UID(uid).name
    return f"{name} ({uid})" if name != uid else uid


def series_problem(series: Series) -> str | None:
    """Why a series cannot be assembled into an MR volume at all, or None if it may be."""
    if series.modality != "MR":
        return f"modality {series.modality or 'missing'} is not MR"
    other = [
        uid
        for uid in series.sop_class_uids or (series.sop_class_uid,)
        if uid not in SUPPORTED_SOP_CLASSES
    ]
    if other:
        names = ", ".join(uid_label(uid) for uid in other)
        return (
            f"SOP class {names} is not an MR image (supported: MR Image Storage, "
            "Enhanced MR Image Storage, Legacy Converted Enhanced MR Image Storage)"
        )
    for uid in series.transfer_syntaxes:
        problem = transfer_syntax_problem(uid)
        if problem:
            return problem
    return None
