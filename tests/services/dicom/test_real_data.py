"""Real data: a GE scanner series, and open-ms NIfTI scans wrapped into DICOM and read back."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from mslesion.devtools.dicom_writer import StudyInfo, nifti_to_series, write_study
from mslesion.services.dicom.errors import DicomInputError
from mslesion.services.dicom.reader import SeriesVolume, Study, load_series_volume, read_study
from mslesion.services.dicom.selection import classify_series, load_rules, select_series
from tests.services.dicom.synthetic import dciodvfy_errors

pytestmark = pytest.mark.shared_data


# --------------------------------------------------------------------------- GE T1


@pytest.fixture(scope="module")
def ge_study(shared_data: Path) -> Study:
    """The GE "Accelerated SAG IR-SPGR" series, headers only."""
    return read_study(shared_data / "dicom" / "ge-t1-sagittal")


@pytest.fixture(scope="module")
def ge_volume(ge_study: Study) -> SeriesVolume:
    """The GE series assembled."""
    return load_series_volume(ge_study.series[0])


def test_ge_series_headers(ge_study: Study) -> None:
    assert len(ge_study.series) == 1
    assert ge_study.skipped == ["LICENSE: not a DICOM file (no DICM prefix)"]
    series = ge_study.series[0]
    assert series.description == "Accelerated SAG IR-SPGR" and series.series_number == 10
    assert series.n_instances == 196 and series.modality == "MR" and series.is_3d
    assert (series.repetition_time, series.echo_time, series.inversion_time) == (
        6.964, 2.832, 400.0,
    )  # fmt: skip
    assert series.scanning_sequence == ("GR",) and series.image_type[:2] == ("ORIGINAL", "PRIMARY")
    assert series.slice_thickness == 1.2 and series.pixel_spacing == (1.0547, 1.0547)


def test_ge_volume_geometry_matches_the_headers(ge_volume: SeriesVolume) -> None:
    image, first = ge_volume.image, ge_volume.headers[0]
    rows, cols = int(first.Rows), int(first.Columns)
    assert image.GetSize() == (cols, rows, 196)
    row_spacing, col_spacing = (float(v) for v in first.PixelSpacing)
    assert image.GetSpacing() == pytest.approx(
        (col_spacing, row_spacing, float(first.SpacingBetweenSlices)), abs=1e-3
    )
    iop = np.array([float(v) for v in first.ImageOrientationPatient])
    direction = np.array(image.GetDirection()).reshape(3, 3)
    np.testing.assert_allclose(direction[:, 0], iop[:3], atol=1e-6)
    np.testing.assert_allclose(direction[:, 1], iop[3:], atol=1e-6)
    np.testing.assert_allclose(direction[:, 2], np.cross(iop[:3], iop[3:]), atol=1e-6)
    # Sagittal: the slice normal is the patient's left-right axis.
    assert abs(direction[0, 2]) > 0.99
    for k in (0, 97, 195):
        ipp = [float(v) for v in ge_volume.headers[k].ImagePositionPatient]
        np.testing.assert_allclose(image.TransformIndexToPhysicalPoint((0, 0, k)), ipp, atol=1e-3)
    heights = [float(np.array(h.ImagePositionPatient, float) @ direction[:, 2])
               for h in ge_volume.headers]  # fmt: skip
    assert np.all(np.diff(heights) > 0)


def test_ge_volume_pixels_match_the_files(ge_volume: SeriesVolume) -> None:
    array = sitk.GetArrayFromImage(ge_volume.image)
    for k in (0, 120):
        dataset = pydicom.dcmread(ge_volume.frames[k].source.path)
        assert dataset.SOPInstanceUID == ge_volume.frames[k].sop_instance_uid
        np.testing.assert_array_equal(array[k], dataset.pixel_array.astype(np.float32))
    assert float(array.max()) > 0


def test_ge_series_is_classified_as_t1(ge_study: Study) -> None:
    decision = classify_series(ge_study.series[0], load_rules())
    assert decision.role == "t1", decision.reason
    with pytest.raises(DicomInputError, match="no FLAIR series") as caught:
        select_series(ge_study)
    assert "'Accelerated SAG IR-SPGR'" in str(caught.value)
    assert "selected as T1" in str(caught.value)


# --------------------------------------------------------------------------- open-ms round trip


@pytest.fixture(scope="module")
def patient01(shared_data: Path) -> Path:
    """The first longitudinal open-ms patient (raw 2D clinical scans)."""
    return shared_data / "open-ms" / "longitudinal" / "patient01"


def test_flair_round_trip(patient01: Path, tmp_path: Path) -> None:
    source = patient01 / "study1_FLAIR.nii.gz"
    nifti = nib.load(str(source))
    data = np.asanyarray(nifti.dataobj)  # type: ignore[attr-defined]
    affine = np.asarray(nifti.affine)  # type: ignore[attr-defined]
    files = nifti_to_series(
        source, tmp_path / "flair", study=StudyInfo(), series_description="AX FLAIR",
        series_number=4, protocol_params={"ScanningSequence": ["SE", "IR"],
        "InversionTime": 2500.0, "EchoTime": 120.0, "RepetitionTime": 9000.0},
    )  # fmt: skip
    assert len(files) == data.shape[2]
    assert dciodvfy_errors(files[len(files) // 2]) == []
    image = load_series_volume(read_study(tmp_path / "flair").series[0]).image
    assert image.GetSize() == data.shape
    assert image.GetSpacing() == pytest.approx(nifti.header.get_zooms()[:3], abs=1e-4)  # type: ignore[attr-defined]
    # This affine runs k along row × column, so the arrays match after (i,j,k) → (z,y,x).
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), data.transpose(2, 1, 0))
    rng = np.random.default_rng(0)
    for _ in range(8):
        ijk = tuple(int(rng.integers(0, n)) for n in data.shape)
        x, y, z = (affine @ np.array([*ijk, 1.0]))[:3]
        index = image.TransformPhysicalPointToIndex((-x, -y, z))  # RAS → LPS
        assert index == ijk
        assert image[index] == data[ijk]
        np.testing.assert_allclose(image.TransformIndexToPhysicalPoint(index), (-x, -y, z),
                                   atol=1e-4)  # fmt: skip


def test_written_study_selects_each_role(patient01: Path, tmp_path: Path) -> None:
    niftis = {role: patient01 / f"study1_{role}.nii.gz" for role in ("FLAIR", "T1W", "T2W")}
    write_study(niftis, tmp_path / "study", StudyInfo(patient_id="P01"))
    study = read_study(tmp_path / "study")
    selection = select_series(study)
    assert {role: s.description for role, s in selection.series.items()} == {
        "flair": "AX FLAIR", "t1": "T1W", "t2": "T2W",
    }  # fmt: skip
    assert all("selected as" in line for line in selection.decisions)
    assert selection.series["t2"].pixel_spacing == pytest.approx((0.5134, 0.5134), abs=1e-3)
