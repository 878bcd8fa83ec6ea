"""NIfTI → DICOM writer: conformant files, exact geometry (RAS → LPS), exact pixel values."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from mslesion.devtools.dicom_writer import StudyInfo, nifti_to_series, write_study
from mslesion.services.config import get_settings
from mslesion.services.dicom.reader import load_series_volume, read_study
from tests.services.dicom.synthetic import (
    FLAIR_PROTOCOL,
    SPACING,
    as_loaded,
    dciodvfy_errors,
    ijk_to_lps,
    oblique_affine,
    volume,
    write_nifti,
    write_series,
)


@pytest.fixture
def flair_files(flair_dir: Path) -> list[Path]:
    """The synthetic FLAIR's files in slice (k) order."""
    return sorted((flair_dir / "flair").glob("IM*.dcm"))


def test_dciodvfy_reports_no_errors(flair_files: list[Path]) -> None:
    for path in (flair_files[0], flair_files[-1]):
        assert dciodvfy_errors(path) == []


def test_part10_file_with_uids_under_the_node_root(flair_files: list[Path]) -> None:
    root = get_settings().uid_root
    raw = flair_files[0].read_bytes()
    assert raw[:128] == bytes(128) and raw[128:132] == b"DICM"
    datasets = [pydicom.dcmread(p) for p in flair_files]
    first = datasets[0]
    assert first.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert first.file_meta.MediaStorageSOPInstanceUID == first.SOPInstanceUID
    assert first.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
    sop_uids = {str(d.SOPInstanceUID) for d in datasets}
    assert len(sop_uids) == 20 and all(uid.startswith(root) for uid in sop_uids)
    assert len({str(d.SeriesInstanceUID) for d in datasets}) == 1
    assert str(first.SeriesInstanceUID).startswith(root)
    assert [int(d.InstanceNumber) for d in datasets] == list(range(1, 21))
    assert first.RepetitionTime == 9000 and first.EchoTime == 120 and first.InversionTime == 2500
    assert list(first.ScanningSequence) == ["SE", "IR"] and first.MRAcquisitionType == "2D"
    assert "RescaleSlope" not in first  # integer data are stored as they are


def test_geometry_follows_the_affine_in_lps(flair_files: list[Path]) -> None:
    affine = oblique_affine()
    lps = np.diag([-1.0, -1.0, 1.0]) @ affine[:3, :3]
    unit = lps / np.linalg.norm(lps, axis=0)
    for k, path in enumerate(flair_files):
        dataset = pydicom.dcmread(path)
        np.testing.assert_allclose(
            [float(v) for v in dataset.ImagePositionPatient], ijk_to_lps(affine, (0, 0, k)),
            atol=1e-6,
        )  # fmt: skip
        np.testing.assert_allclose(
            [float(v) for v in dataset.ImageOrientationPatient], [*unit[:, 0], *unit[:, 1]],
            atol=1e-9,
        )  # fmt: skip
    dataset = pydicom.dcmread(flair_files[3])
    assert [float(v) for v in dataset.PixelSpacing] == pytest.approx([SPACING[1], SPACING[0]])
    assert float(dataset.SliceThickness) == pytest.approx(SPACING[2])
    assert float(dataset.SpacingBetweenSlices) == pytest.approx(SPACING[2])
    assert (dataset.Rows, dataset.Columns) == (64, 64)
    # Pixel (row r, column c) of slice k is NIfTI voxel (c, r, k).
    np.testing.assert_array_equal(dataset.pixel_array, volume()[:, :, 3].T)


def test_round_trip_through_the_reader(flair_dir: Path) -> None:
    loaded = load_series_volume(read_study(flair_dir).series[0])
    image, data, affine = loaded.image, volume(), oblique_affine()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), as_loaded(data))
    rng = np.random.default_rng(1)
    voxels = [(0, 0, 0), (63, 63, 19), *(tuple(rng.integers(0, 20, 3).tolist()) for _ in range(5))]
    for ijk in voxels:
        index = image.TransformPhysicalPointToIndex(ijk_to_lps(affine, ijk))
        assert image[index] == data[ijk]
        np.testing.assert_allclose(
            image.TransformIndexToPhysicalPoint(index), ijk_to_lps(affine, ijk), atol=1e-6
        )
    assert image.GetSpacing() == pytest.approx((SPACING[0], SPACING[1], SPACING[2]))
    # The affine's k axis runs against row × column: the last file is the first slice.
    assert loaded.frames[0].sop_instance_uid == str(loaded.headers[0].SOPInstanceUID)
    assert int(loaded.headers[0].InstanceNumber) == 20


def test_float_data_are_rescaled(tmp_path: Path, study_info: StudyInfo) -> None:
    data = np.random.default_rng(2).normal(0.0, 1.0, (64, 64, 20)).astype(np.float32)
    files = write_series(tmp_path / "s" / "z", study_info, description="AX FLAIR", data=data)
    dataset = pydicom.dcmread(files[0])
    slope, intercept = float(dataset.RescaleSlope), float(dataset.RescaleIntercept)
    assert dataset.PixelRepresentation == 0 and slope < 1e-3
    assert intercept == pytest.approx(float(data.min()), abs=1e-4)
    assert dciodvfy_errors(files[0]) == []
    loaded = sitk.GetArrayFromImage(load_series_volume(read_study(tmp_path / "s").series[0]).image)
    np.testing.assert_allclose(loaded, as_loaded(data), atol=slope / 2 + 1e-6)


def test_signed_integers_are_kept(tmp_path: Path, study_info: StudyInfo) -> None:
    data = np.random.default_rng(3).integers(-1000, 1000, (64, 64, 20)).astype(np.int16)
    files = write_series(tmp_path / "s" / "z", study_info, data=data)
    dataset = pydicom.dcmread(files[0])
    assert dataset.PixelRepresentation == 1 and "RescaleSlope" not in dataset
    loaded = sitk.GetArrayFromImage(load_series_volume(read_study(tmp_path / "s").series[0]).image)
    np.testing.assert_array_equal(loaded, as_loaded(data))


def test_write_study_shares_study_and_frame_of_reference(
    tmp_path: Path, study_info: StudyInfo
) -> None:
    flair = write_nifti(tmp_path / "f.nii.gz", volume(), oblique_affine())
    iso = oblique_affine() @ np.diag([1.0, 1.0, 1.0 / 3.0, 1.0])  # 1 mm slices: a 3D T1
    t1 = write_nifti(tmp_path / "t1.nii.gz", volume(seed=1), iso)
    written = write_study({"FLAIR": flair, "t1": t1}, tmp_path / "study", study_info)
    headers = {role: pydicom.dcmread(files[0]) for role, files in written.items()}
    assert {str(h.StudyInstanceUID) for h in headers.values()} == {study_info.study_uid}
    assert len({str(h.FrameOfReferenceUID) for h in headers.values()}) == 1
    assert len({str(h.SeriesInstanceUID) for h in headers.values()}) == 2
    assert headers["FLAIR"].SeriesDescription == "AX FLAIR"
    assert headers["t1"].SeriesDescription == "T1W" and headers["t1"].MRAcquisitionType == "3D"
    assert float(headers["t1"].InversionTime) == 900 and float(headers["t1"].EchoTime) == 2.3
    assert headers["FLAIR"].PatientName == study_info.patient_name
    assert headers["FLAIR"].StudyDate == "20240102"
    assert dciodvfy_errors(written["t1"][0]) == []


@pytest.mark.parametrize(
    ("protocol", "problem"),
    [
        ({"SOPInstanceUID": "1.2.3"}, "set by the writer"),
        ({"NoSuchKeyword": 1}, "not a DICOM keyword"),
        ({"ScanningSequence": ["SE"], "InversionTime": 900.0}, "no IR"),
        ({"ScanningSequence": ["SE", "IR"]}, "no InversionTime"),
    ],
)
def test_bad_protocol_parameters(
    tmp_path: Path, study_info: StudyInfo, protocol: dict[str, object], problem: str
) -> None:
    nifti = write_nifti(tmp_path / "f.nii.gz", volume(), oblique_affine())
    with pytest.raises(ValueError, match=problem):
        nifti_to_series(nifti, tmp_path / "out", study=study_info, series_description="X",
                        series_number=1, protocol_params=protocol)  # fmt: skip


def _write(nifti: Path, out_dir: Path, study: StudyInfo) -> list[Path]:
    return nifti_to_series(nifti, out_dir, study=study, series_description="X",
                           series_number=1, protocol_params=FLAIR_PROTOCOL)  # fmt: skip


def test_refuses_to_overwrite_and_bad_volumes(tmp_path: Path, study_info: StudyInfo) -> None:
    nifti = write_nifti(tmp_path / "f.nii.gz", volume(), oblique_affine())
    _write(nifti, tmp_path / "out", study_info)
    with pytest.raises(ValueError, match="exists"):
        _write(nifti, tmp_path / "out", study_info)
    sheared = oblique_affine()
    sheared[0, 2] += 1.0
    with pytest.raises(ValueError, match="sheared"):
        _write(write_nifti(tmp_path / "s.nii.gz", volume(), sheared), tmp_path / "o2", study_info)
    four_d = nib.Nifti1Image(np.zeros((4, 4, 4, 2), np.uint16), np.eye(4))
    nib.save(four_d, str(tmp_path / "4d.nii.gz"))
    with pytest.raises(ValueError, match="expected a 3D volume"):
        _write(tmp_path / "4d.nii.gz", tmp_path / "o3", study_info)


@pytest.mark.parametrize(
    "fields",
    [{"study_date": "2024-01-02"}, {"study_time": "10:15"}, {"patient_sex": "X"}],
)
def test_study_info_validates_dicom_formats(fields: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="StudyInfo"):
        StudyInfo(**fields)


def test_a_sheared_volume_is_written_as_a_sheared_stack_only_when_asked(
    tmp_path: Path, study_info: StudyInfo
) -> None:
    sheared = oblique_affine()
    sheared[0, 2] += 1.0  # the slice axis leaves the normal: positions lean within the plane
    nifti = write_nifti(tmp_path / "s.nii.gz", volume(), sheared)
    with pytest.raises(ValueError, match="sheared"):
        _write(nifti, tmp_path / "refused", study_info)
    paths = nifti_to_series(nifti, tmp_path / "out", study=study_info, series_description="X",
                            series_number=1, protocol_params=FLAIR_PROTOCOL,
                            allow_shear=True)  # fmt: skip
    datasets = [pydicom.dcmread(path) for path in paths]
    for k in (0, 7, len(paths) - 1):
        np.testing.assert_allclose(
            [float(v) for v in datasets[k].ImagePositionPatient],
            ijk_to_lps(sheared, (0, 0, k)),
            atol=1e-4,
        )
    iop = np.array([float(v) for v in datasets[0].ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    first, second = ([float(v) for v in ds.ImagePositionPatient] for ds in datasets[:2])
    gap = abs(float((np.array(second) - np.array(first)) @ normal))
    assert float(datasets[0].SpacingBetweenSlices) == pytest.approx(gap, abs=1e-4)
    loaded = load_series_volume(read_study(tmp_path / "out").series[0])  # the reader takes it
    assert loaded.image.GetSize()[2] == len(paths)
