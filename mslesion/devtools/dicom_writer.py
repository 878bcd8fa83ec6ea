"""Wrap NIfTI volumes into standard DICOM MR Image Storage series, one file per slice.

This builds DICOM studies from NIfTI for tests and demonstrations (a scanner's output, as a
hospital PACS would send it). Files are explicit VR little endian Part 10 files with every
Type 1 and Type 2 attribute of the MR Image IOD, so ``dciodvfy`` reports no errors.

Geometry: NIfTI world coordinates are RAS, DICOM patient coordinates are LPS, so the affine's
first two rows change sign. NIfTI array axis i runs along a DICOM row (columns of the image),
axis j down the columns (rows of the image) and axis k across slices.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, MRImageStorage, generate_uid
from pydicom.valuerep import format_number_as_ds

from mslesion.services.config import get_settings

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
GYROMAGNETIC_MHZ_PER_T = 42.577478  # 1H
ORTHOGONALITY_TOL = 1e-3
MAX_3D_SLICE_MM = 1.5  # thinner slices: call it a 3D acquisition when the caller does not say

# Attributes that the writer derives from the volume and the study: a protocol cannot set them.
PROTECTED_KEYWORDS = frozenset(
    {
        "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID",
        "FrameOfReferenceUID", "ImagePositionPatient", "ImageOrientationPatient",
        "PixelSpacing", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
        "PixelRepresentation", "SamplesPerPixel", "PhotometricInterpretation", "PixelData",
        "RescaleSlope", "RescaleIntercept", "InstanceNumber", "Modality", "PatientName",
        "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
    }
)  # fmt: skip

# A plain spin echo; write_study and callers override what their contrast needs.
GENERIC_PROTOCOL: dict[str, Any] = {
    "ScanningSequence": ["SE"],
    "SequenceVariant": ["SK", "SP"],
    "ScanOptions": "",
    "RepetitionTime": 500.0,
    "EchoTime": 10.0,
    "EchoTrainLength": 1,
    "NumberOfAverages": 1.0,
    "MagneticFieldStrength": 3.0,
    "ImagedNucleus": "1H",
    "EchoNumbers": 1,
    "FlipAngle": 90.0,
    "AngioFlag": "N",
    "PatientPosition": "HFS",
}

_DA = re.compile(r"^(\d{8})?$")
_TM = re.compile(r"^(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?$")


def new_uid() -> str:
    """A new UID under this node's root (``MSLESION_UID_ROOT``)."""
    return str(generate_uid(prefix=get_settings().uid_root))


def _today() -> str:
    return dt.date.today().strftime("%Y%m%d")


def _now() -> str:
    return dt.datetime.now().strftime("%H%M%S")


@dataclass(frozen=True)
class StudyInfo:
    """Patient and study attributes shared by every series written for one study.

    Dates are DICOM DA strings (YYYYMMDD), times TM strings (HHMMSS); empty means unknown.
    ``frame_of_reference_uid``: None gives each series written alone its own frame of
    reference, and all series of :func:`write_study` one shared frame (one scanner session).
    """

    patient_name: str = "ANONYMOUS^PATIENT"
    patient_id: str = "ANON0001"
    patient_birth_date: str = ""
    patient_sex: str = ""
    study_uid: str = field(default_factory=new_uid)
    study_date: str = field(default_factory=_today)
    study_time: str = field(default_factory=_now)
    accession_number: str = ""
    study_description: str = ""
    study_id: str = "1"
    referring_physician_name: str = ""
    frame_of_reference_uid: str | None = None

    def __post_init__(self) -> None:
        for name, pattern in (
            ("patient_birth_date", _DA),
            ("study_date", _DA),
            ("study_time", _TM),
        ):
            if not pattern.match(getattr(self, name)):
                raise ValueError(f"StudyInfo.{name}={getattr(self, name)!r} is not DICOM DA/TM")
        if self.patient_sex not in ("", "M", "F", "O"):
            raise ValueError(f"StudyInfo.patient_sex={self.patient_sex!r}: use M, F, O or ''")


# --------------------------------------------------------------------------- NIfTI side


@dataclass(frozen=True)
class _Grid:
    """DICOM plane geometry of a NIfTI volume, in LPS."""

    affine: np.ndarray  # voxel (i, j, k) -> LPS mm
    row_direction: np.ndarray  # along i: from one column to the next
    column_direction: np.ndarray  # along j: from one row to the next
    column_spacing: float
    row_spacing: float
    slice_spacing: float

    def position(self, k: int) -> np.ndarray:
        """ImagePositionPatient of slice k: centre of voxel (0, 0, k)."""
        return self.affine[:3, :3] @ np.array([0.0, 0.0, float(k)]) + self.affine[:3, 3]

    @property
    def normal(self) -> np.ndarray:
        """Slice normal, row × column direction (DICOM convention)."""
        return np.cross(self.row_direction, self.column_direction)


def _grid(affine_ras: np.ndarray, source: Path, allow_shear: bool) -> _Grid:
    affine = RAS_TO_LPS @ affine_ras
    axes = affine[:3, :3]
    lengths = np.linalg.norm(axes, axis=0)
    if not (lengths > 0).all():
        raise ValueError(f"{source}: degenerate affine (a zero-length voxel axis)")
    unit = axes / lengths
    if abs(float(unit[:, 0] @ unit[:, 1])) > ORTHOGONALITY_TOL:
        raise ValueError(f"{source}: the affine is sheared (rows and columns not orthogonal)")
    normal = np.cross(unit[:, 0], unit[:, 1])
    along = abs(float(axes[:, 2] @ normal))  # slice gap along the normal
    # DICOM carries a sheared stack (a gantry tilt) in ImagePositionPatient; a sheared NIfTI
    # is far more often a mistake, so writing one must be asked for.
    if along < lengths[2] * (1 - ORTHOGONALITY_TOL) and not allow_shear:
        raise ValueError(f"{source}: the affine is sheared (voxel axes not orthogonal)")
    if along < ORTHOGONALITY_TOL * lengths[2]:
        raise ValueError(f"{source}: the slice axis lies within the slice plane")
    return _Grid(affine, unit[:, 0], unit[:, 1], float(lengths[0]), float(lengths[1]),
                 along)  # fmt: skip


def _load_nifti(path: Path, allow_shear: bool = False) -> tuple[np.ndarray, _Grid]:
    image = nib.load(str(path))
    data = np.asanyarray(image.dataobj)  # type: ignore[attr-defined]
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"{path}: expected a 3D volume, got shape {data.shape}")
    affine = np.asarray(image.affine, dtype=np.float64)  # type: ignore[attr-defined]
    return data, _grid(affine, path, allow_shear)


@dataclass(frozen=True)
class _Pixels:
    stored: np.ndarray  # (i, j, k), int16 or uint16, little endian
    slope: float | None  # None: stored values are the real values
    intercept: float | None


def _fits(data: np.ndarray, dtype: type[np.integer[Any]]) -> bool:
    info = np.iinfo(dtype)
    return bool(data.min() >= info.min and data.max() <= info.max)


def _to_pixels(data: np.ndarray, source: Path) -> _Pixels:
    """Store integers as they are when they fit 16 bits; scale anything else into uint16."""
    if not np.isfinite(data).all():
        raise ValueError(f"{source}: NaN or infinite voxels cannot be stored as DICOM pixels")
    integral = np.issubdtype(data.dtype, np.integer) or bool((data == np.round(data)).all())
    for dtype in (np.uint16, np.int16):
        if integral and _fits(data, dtype):
            return _Pixels(data.astype(np.dtype(dtype).newbyteorder("<")), None, None)
    low, high = float(data.min()), float(data.max())
    # Round the slope to what a 16-character DS can hold, so stored * slope + intercept is
    # exactly what a reader computes from the header.
    slope = float(format_number_as_ds((high - low) / 65535.0)) if high > low else 1.0
    intercept = float(format_number_as_ds(low))
    stored = np.clip(np.round((data.astype(np.float64) - intercept) / slope), 0, 65535)
    return _Pixels(stored.astype("<u2"), slope, intercept)


# --------------------------------------------------------------------------- DICOM side


def _ds(value: float) -> str:
    return format_number_as_ds(float(value))


def _set_protocol(dataset: Dataset, protocol: Mapping[str, Any]) -> None:
    for keyword, value in protocol.items():
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise ValueError(f"protocol parameter {keyword!r} is not a DICOM keyword")
        if keyword in PROTECTED_KEYWORDS:
            raise ValueError(f"protocol parameter {keyword!r} is set by the writer, not the caller")
        if dictionary_VR(tag) == "DS" and isinstance(value, int | float):
            value = _ds(value)
        setattr(dataset, keyword, value)


def _protocol(protocol_params: Mapping[str, Any] | None, grid: _Grid) -> dict[str, Any]:
    protocol = {**GENERIC_PROTOCOL, **(protocol_params or {})}
    protocol.setdefault(
        "MRAcquisitionType", "3D" if grid.slice_spacing <= MAX_3D_SLICE_MM else "2D"
    )
    protocol.setdefault(
        "ImagingFrequency", GYROMAGNETIC_MHZ_PER_T * float(protocol["MagneticFieldStrength"])
    )
    protocol.setdefault("SliceThickness", grid.slice_spacing)
    sequence = protocol["ScanningSequence"]
    sequence = sequence.split("\\") if isinstance(sequence, str) else list(sequence)
    if "InversionTime" in protocol and "IR" not in sequence:
        # The MR Image module allows InversionTime only for inversion-recovery sequences.
        raise ValueError("InversionTime is given but ScanningSequence has no IR")
    if "IR" in sequence and "InversionTime" not in protocol:
        raise ValueError("ScanningSequence has IR but no InversionTime is given")
    return protocol


def _study_attributes(dataset: Dataset, study: StudyInfo) -> None:
    dataset.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: patient names are not always ASCII
    dataset.PatientName = study.patient_name
    dataset.PatientID = study.patient_id
    dataset.PatientBirthDate = study.patient_birth_date
    dataset.PatientSex = study.patient_sex
    dataset.StudyInstanceUID = study.study_uid
    dataset.StudyDate = study.study_date
    dataset.StudyTime = study.study_time
    dataset.ReferringPhysicianName = study.referring_physician_name
    dataset.StudyID = study.study_id
    dataset.AccessionNumber = study.accession_number
    if study.study_description:
        dataset.StudyDescription = study.study_description


def _series_attributes(dataset: Dataset, study: StudyInfo, description: str, number: int,
                       frame_of_reference_uid: str) -> None:  # fmt: skip
    settings = get_settings()
    dataset.SOPClassUID = MRImageStorage
    dataset.Modality = "MR"
    dataset.SeriesInstanceUID = new_uid()
    dataset.SeriesNumber = number
    dataset.SeriesDescription = description
    dataset.ProtocolName = description
    for keyword in ("SeriesDate", "ContentDate", "AcquisitionDate"):
        setattr(dataset, keyword, study.study_date)
    for keyword in ("SeriesTime", "ContentTime", "AcquisitionTime"):
        setattr(dataset, keyword, study.study_time)
    dataset.FrameOfReferenceUID = frame_of_reference_uid
    dataset.PositionReferenceIndicator = ""
    # An unpaired body part: Laterality (Type 2C) is then correctly absent.
    dataset.BodyPartExamined = "BRAIN"
    dataset.Manufacturer = settings.manufacturer
    dataset.ManufacturerModelName = settings.manufacturer_model_name
    dataset.DeviceSerialNumber = settings.device_serial_number
    dataset.SoftwareVersions = "mslesion nifti_to_series"
    if settings.institution_name:
        dataset.InstitutionName = settings.institution_name
    dataset.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
    dataset.AcquisitionNumber = 1
    dataset.BurnedInAnnotation = "NO"


def _pixel_attributes(dataset: Dataset, grid: _Grid, pixels: _Pixels) -> None:
    n_i, n_j, _ = pixels.stored.shape
    dataset.Rows = n_j
    dataset.Columns = n_i
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = 16
    dataset.BitsStored = 16
    dataset.HighBit = 15
    dataset.PixelRepresentation = 1 if pixels.stored.dtype.kind == "i" else 0
    dataset.PixelSpacing = [_ds(grid.row_spacing), _ds(grid.column_spacing)]
    dataset.ImageOrientationPatient = [
        _ds(v) for v in (*grid.row_direction, *grid.column_direction)
    ]
    dataset.SpacingBetweenSlices = _ds(grid.slice_spacing)
    if pixels.slope is not None and pixels.intercept is not None:
        dataset.RescaleSlope = _ds(pixels.slope)
        dataset.RescaleIntercept = _ds(pixels.intercept)
        dataset.RescaleType = "US"  # unspecified: the real values have no DICOM unit


def _window(pixels: _Pixels) -> tuple[float, float]:
    low, high = np.percentile(pixels.stored, [1.0, 99.5])
    slope = pixels.slope or 1.0
    intercept = pixels.intercept or 0.0
    low, high = low * slope + intercept, high * slope + intercept
    return (low + high) / 2.0, max(high - low, 1.0)


def _file_meta(sop_instance_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def _write_slice(template: Dataset, grid: _Grid, pixels: _Pixels, k: int, path: Path) -> None:
    dataset = copy.deepcopy(template)
    sop_instance_uid = new_uid()
    dataset.SOPInstanceUID = sop_instance_uid
    dataset.InstanceNumber = k + 1
    position = grid.position(k)
    dataset.ImagePositionPatient = [_ds(v) for v in position]
    dataset.SliceLocation = _ds(float(position @ grid.normal))
    # NIfTI axis i is the image's column index, j its row index: rows of the plane are j.
    dataset.PixelData = np.ascontiguousarray(pixels.stored[:, :, k].T).tobytes()
    dataset.file_meta = _file_meta(sop_instance_uid)
    pydicom.dcmwrite(path, dataset, enforce_file_format=True, overwrite=False)


def nifti_to_series(
    nifti: Path,
    out_dir: Path,
    *,
    study: StudyInfo,
    series_description: str,
    series_number: int,
    protocol_params: Mapping[str, Any] | None = None,
    frame_of_reference_uid: str | None = None,
    allow_shear: bool = False,
) -> list[Path]:
    """Write a 3D NIfTI as an MR Image Storage series, one file per slice, in ``out_dir``.

    ``protocol_params`` maps DICOM keywords of acquisition attributes (ScanningSequence,
    SequenceVariant, RepetitionTime, EchoTime, InversionTime, MRAcquisitionType,
    MagneticFieldStrength...) to values; they override a generic spin echo. Float data are
    stored as uint16 with RescaleSlope/Intercept. Returns the files in slice order (k).
    ``allow_shear`` writes a NIfTI whose slice axis leans from the normal as a sheared stack
    (slice positions offset within the slice plane, as a gantry tilt gives).
    Raises ``ValueError`` for a non-3D or (unless allowed) sheared volume, a bad parameter
    or an existing file.
    """
    data, grid = _load_nifti(nifti, allow_shear)
    pixels = _to_pixels(data, nifti)
    frame_of_reference = frame_of_reference_uid or study.frame_of_reference_uid or new_uid()
    template = Dataset()
    _study_attributes(template, study)
    _series_attributes(template, study, series_description, series_number, frame_of_reference)
    _set_protocol(template, _protocol(protocol_params, grid))
    _pixel_attributes(template, grid, pixels)
    center, width = _window(pixels)
    template.WindowCenter = _ds(center)
    template.WindowWidth = _ds(width)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"IM{k + 1:05d}.dcm" for k in range(data.shape[2])]
    existing = [p for p in paths if p.exists()]
    if existing:
        raise ValueError(f"{existing[0]} exists: write each series into its own folder")
    for k, path in enumerate(paths):
        _write_slice(template, grid, pixels, k, path)
    return paths


# --------------------------------------------------------------------------- whole study


@dataclass(frozen=True)
class _RoleDefaults:
    series_number: int
    description: str
    protocol_2d: dict[str, Any]
    protocol_3d: dict[str, Any]


_FLAIR_2D = {"ScanningSequence": ["SE", "IR"], "SequenceVariant": ["SK", "SP", "MP"],
             "RepetitionTime": 9000.0, "EchoTime": 120.0, "InversionTime": 2500.0,
             "EchoTrainLength": 16, "FlipAngle": 150.0}  # fmt: skip
_T1_2D = {"ScanningSequence": ["SE"], "SequenceVariant": ["SK", "SP"], "RepetitionTime": 500.0,
          "EchoTime": 10.0, "EchoTrainLength": 1, "FlipAngle": 90.0}  # fmt: skip
_T2_2D = {"ScanningSequence": ["SE"], "SequenceVariant": ["SK", "SP"], "RepetitionTime": 5000.0,
          "EchoTime": 100.0, "EchoTrainLength": 16, "FlipAngle": 150.0}  # fmt: skip

ROLE_DEFAULTS: dict[str, _RoleDefaults] = {
    "T1W": _RoleDefaults(2, "T1W", _T1_2D, {
        "ScanningSequence": ["GR", "IR"], "SequenceVariant": ["SK", "SP", "MP"],
        "RepetitionTime": 2300.0, "EchoTime": 2.3, "InversionTime": 900.0,
        "EchoTrainLength": 1, "FlipAngle": 8.0}),
    "T2W": _RoleDefaults(3, "T2W", _T2_2D, {**_T2_2D, "RepetitionTime": 3200.0,
                                            "EchoTime": 400.0, "EchoTrainLength": 200}),
    "FLAIR": _RoleDefaults(4, "AX FLAIR", _FLAIR_2D, {
        **_FLAIR_2D, "RepetitionTime": 5000.0, "EchoTime": 390.0, "InversionTime": 1800.0,
        "EchoTrainLength": 200}),
}  # fmt: skip
_ROLE_ALIASES = {"T1": "T1W", "T2": "T2W"}


def _role_key(role: str) -> str:
    key = _ROLE_ALIASES.get(role.upper(), role.upper())
    if key not in ROLE_DEFAULTS:
        raise ValueError(f"unknown role {role!r}: write_study knows {', '.join(ROLE_DEFAULTS)}")
    return key


def _is_3d(nifti: Path) -> bool:
    zooms = nib.load(str(nifti)).header.get_zooms()  # type: ignore[attr-defined]
    return len(zooms) >= 3 and float(zooms[2]) <= MAX_3D_SLICE_MM


def write_study(
    niftis: Mapping[str, Path], out_dir: Path, study: StudyInfo, *, allow_shear: bool = False
) -> dict[str, list[Path]]:
    """Write FLAIR/T1W/T2W NIfTI files as the series of one DICOM study, one folder each.

    Keys of ``niftis`` are roles (FLAIR, T1W or T1, T2W or T2; any case). Each series gets a
    typical description ("AX FLAIR", "T1W", "T2W") and TR/TE/TI of its contrast (2D or 3D by
    slice thickness); all share the study's UIDs and one frame of reference.
    ``allow_shear`` as for :func:`nifti_to_series`.
    """
    frame_of_reference = study.frame_of_reference_uid or new_uid()
    written: dict[str, list[Path]] = {}
    for role, nifti in niftis.items():
        defaults = ROLE_DEFAULTS[_role_key(role)]
        protocol = defaults.protocol_3d if _is_3d(nifti) else defaults.protocol_2d
        written[role] = nifti_to_series(
            nifti,
            out_dir / f"S{defaults.series_number:03d}_{_role_key(role)}",
            study=study,
            series_description=defaults.description,
            series_number=defaults.series_number,
            protocol_params={**protocol, "MRAcquisitionType": "3D" if _is_3d(nifti) else "2D"},
            frame_of_reference_uid=frame_of_reference,
            allow_shear=allow_shear,
        )
    return written
