"""Fixtures of the reporting tests: a real GE MR series, two synthetic lesions, SEG and SR.

The SEG and SR are built once per session: building them is the slow part and every test
only reads them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from mslesion.services.config import Settings
from mslesion.services.reporting.seg import build_seg, patient_affine
from mslesion.services.reporting.sr import build_sr
from mslesion.services.segmentation.postprocess import LesionReport, describe_lesions
from tests.dicom_tools import dciodvfy_report, require_tool

GE_SERIES = Path("dicom") / "ge-t1-sagittal"
MODEL_NAME = "flair_t1"
MODEL_VERSION = "0.3.1"
BRAIN_VOLUME_ML = 1187.25

LESIONS = (((60, 100, 120), 6), ((120, 140, 100), 3))
"""(frame, row, column) centre and radius in voxels of the two synthetic spheres; the first
is the larger one."""


@dataclass(frozen=True)
class Outputs:
    """One run of SEG and SR over the GE series, written to disk and read back."""

    seg_path: Path
    sr_path: Path
    seg: hd.seg.Segmentation
    sr: hd.sr.Comprehensive3DSR


def sphere_mask(shape: tuple[int, int, int], lesions: tuple = LESIONS) -> np.ndarray:
    """uint8 mask with a filled ball per (centre, radius)."""
    grid = np.ogrid[: shape[0], : shape[1], : shape[2]]
    mask = np.zeros(shape, np.uint8)
    for centre, radius in lesions:
        dist2 = sum((axis - c) ** 2 for axis, c in zip(grid, centre, strict=True))
        mask[dist2 <= radius**2] = 1
    return mask


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings(
        uid_root="1.2.826.0.1.3680043.8.498.77.",
        manufacturer="mslesion test",
        manufacturer_model_name="mslesion-ci",
        device_serial_number="CI-0042",
        institution_name="Test Hospital",
    )


@pytest.fixture(scope="session")
def ge_series(shared_data: Path) -> list[pydicom.Dataset]:
    """The GE series, sorted by position along the slice normal (as the pipeline gives it)."""
    files = sorted((shared_data / GE_SERIES).glob("*.dcm"))
    assert files, f"no DICOM files in {shared_data / GE_SERIES}"
    images = [pydicom.dcmread(f) for f in files]
    orientation = np.array([float(v) for v in images[0].ImageOrientationPatient])
    normal = np.cross(orientation[:3], orientation[3:])
    return sorted(
        images, key=lambda ds: float(np.dot(normal, [float(v) for v in ds.ImagePositionPatient]))
    )


@pytest.fixture(scope="session")
def lesion_mask(ge_series: list[pydicom.Dataset]) -> np.ndarray:
    return sphere_mask((len(ge_series), int(ge_series[0].Rows), int(ge_series[0].Columns)))


@pytest.fixture(scope="session")
def lesion_report(ge_series: list[pydicom.Dataset], lesion_mask: np.ndarray) -> LesionReport:
    prob = lesion_mask.astype(np.float32)
    return describe_lesions(lesion_mask, prob, patient_affine(ge_series))


@pytest.fixture(scope="session")
def outputs(
    ge_series: list[pydicom.Dataset],
    lesion_mask: np.ndarray,
    lesion_report: LesionReport,
    settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Outputs:
    folder = tmp_path_factory.mktemp("reporting")
    seg = build_seg(ge_series, lesion_mask, MODEL_NAME, MODEL_VERSION, settings)
    sr = build_sr(
        ge_series, seg, lesion_report, BRAIN_VOLUME_ML, MODEL_NAME, MODEL_VERSION, settings
    )
    seg_path, sr_path = folder / "seg.dcm", folder / "sr.dcm"
    pydicom.dcmwrite(seg_path, seg, enforce_file_format=True)
    pydicom.dcmwrite(sr_path, sr, enforce_file_format=True)
    sr_back = hd.sr.srread(sr_path)
    assert isinstance(sr_back, hd.sr.Comprehensive3DSR)
    return Outputs(seg_path, sr_path, hd.seg.segread(seg_path), sr_back)


@pytest.fixture(scope="session")
def dciodvfy() -> Callable[[Path], str]:
    """Run dicom3tools' dciodvfy on a file; fail on any "Error" line, return the report.

    Skipped where dciodvfy is not installed, except under MSLESION_REQUIRE_SHARED_DATA=1
    (CI), where a missing validator must not silently pass.
    """
    require_tool("dciodvfy")

    def run(path: Path) -> str:
        report = dciodvfy_report(path)
        errors = [line for line in report.splitlines() if line.startswith("Error")]
        assert not errors, f"dciodvfy found errors in {path.name}:\n{report}"
        return report

    return run
