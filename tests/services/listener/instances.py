"""Small synthetic single-frame images (MR, or another SOP class) for the listener's tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, MRImageStorage, generate_uid

PATIENT_NAME = "LISTENER^TESTPATIENT"
PATIENT_ID = "PHI-ID-4711"


def instance(
    study_uid: str,
    series_uid: str,
    number: int,
    *,
    sop_class: UID = MRImageStorage,
    size: int = 16,
) -> Dataset:
    """One single-frame image with ``size``² random 16-bit pixels."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.Modality = "MR" if sop_class == MRImageStorage else "CT"
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = "19700101"
    ds.StudyDate = "20240131"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 1
    ds.InstanceNumber = number
    ds.ImagePositionPatient = [0.0, 0.0, float(number)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [1.0, 1.0]
    ds.SliceThickness = 1.0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = size
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    pixels = np.random.default_rng(number).integers(0, 4000, (size, size), dtype=np.uint16)
    ds.PixelData = pixels.tobytes()
    return ds


def write_series(
    folder: Path,
    count: int,
    *,
    study_uid: str | None = None,
    sop_class: UID = MRImageStorage,
    size: int = 16,
) -> list[Path]:
    """Write ``count`` instances of one new series (of ``study_uid`` or a new study)."""
    folder.mkdir(parents=True, exist_ok=True)
    study_uid = study_uid or generate_uid()
    series_uid = generate_uid()
    paths = []
    for number in range(1, count + 1):
        ds = instance(study_uid, series_uid, number, sop_class=sop_class, size=size)
        path = folder / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
