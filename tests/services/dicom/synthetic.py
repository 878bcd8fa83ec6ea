"""Small synthetic DICOM series for ingest tests, written with the product's own writer.

The writer itself is checked against ``dciodvfy`` and against real NIfTI data elsewhere, so
series built here are standard MR Image Storage files that tests then damage on purpose.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from mslesion.devtools.dicom_writer import StudyInfo, nifti_to_series
from tests.dicom_tools import dciodvfy_errors, require_tool  # noqa: F401

SHAPE = (64, 64, 20)
SPACING = (0.9, 0.8, 3.0)

FLAIR_PROTOCOL: dict[str, Any] = {
    "ScanningSequence": ["SE", "IR"],
    "SequenceVariant": ["SK", "SP", "MP"],
    "RepetitionTime": 9000.0,
    "EchoTime": 120.0,
    "InversionTime": 2500.0,
    "MRAcquisitionType": "2D",
}
T1_PROTOCOL: dict[str, Any] = {
    "ScanningSequence": ["GR", "IR"],
    "SequenceVariant": ["SK", "SP", "MP"],
    "RepetitionTime": 2300.0,
    "EchoTime": 2.3,
    "InversionTime": 900.0,
    "MRAcquisitionType": "3D",
}


def volume(seed: int = 0) -> np.ndarray:
    """Random uint16 voxels: any misplaced slice or transposed plane changes the values."""
    return np.random.default_rng(seed).integers(0, 4000, SHAPE, dtype=np.uint16)


def oblique_affine() -> np.ndarray:
    """A rotated RAS affine whose slice axis runs against row × column (det < 0).

    DICOM readers must then sort slices in the opposite order to NIfTI's k axis, which is
    exactly the case a naive reader gets wrong.
    """
    a, b = np.deg2rad(12.0), np.deg2rad(-7.0)
    rot_x = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    rot_z = np.array([[np.cos(b), -np.sin(b), 0], [np.sin(b), np.cos(b), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rot_z @ rot_x @ np.diag([-SPACING[0], SPACING[1], SPACING[2]])
    affine[:3, 3] = (30.5, -40.25, -20.0)
    return affine


def as_loaded(data: np.ndarray) -> np.ndarray:
    """``data`` (i, j, k) as the reader's array (z, y, x) holds it for :func:`oblique_affine`.

    Rows of a DICOM plane follow j and columns i; z runs along the normal, against k.
    """
    return data.transpose(2, 1, 0)[::-1]


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    """Save ``data`` as NIfTI with ``affine`` in both sform and qform."""
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, str(path))
    return path


def write_series(
    out_dir: Path,
    study: StudyInfo,
    *,
    description: str = "AX FLAIR",
    number: int = 4,
    protocol: dict[str, Any] | None = None,
    data: np.ndarray | None = None,
    affine: np.ndarray | None = None,
) -> list[Path]:
    """Write one synthetic series into ``out_dir`` (default: the FLAIR of :func:`volume`)."""
    with tempfile.TemporaryDirectory() as scratch:
        nifti = write_nifti(
            Path(scratch) / "source.nii.gz",
            volume() if data is None else data,
            oblique_affine() if affine is None else affine,
        )
        return nifti_to_series(
            nifti,
            out_dir,
            study=study,
            series_description=description,
            series_number=number,
            protocol_params=FLAIR_PROTOCOL if protocol is None else protocol,
        )


def ijk_to_lps(affine: np.ndarray, ijk: tuple[int, int, int]) -> tuple[float, float, float]:
    """Physical LPS position of a NIfTI voxel."""
    x, y, z = (affine @ np.array([*ijk, 1.0]))[:3]
    return (-float(x), -float(y), float(z))
