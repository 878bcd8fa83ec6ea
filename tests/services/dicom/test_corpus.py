"""The bad-input corpus: each damaged study gets a clear DicomInputError naming what is wrong.

Every case is generated from a valid synthetic series, so the only difference from a study
that loads is the damage under test.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    MPEG2MPML,
    UID,
    ExplicitVRLittleEndian,
    MediaStorageDirectoryStorage,
    RLELossless,
    generate_uid,
)

from mslesion.devtools.dicom_writer import StudyInfo
from mslesion.services.dicom.errors import DicomInputError
from mslesion.services.dicom.reader import (
    ENHANCED_MR_IMAGE_STORAGE,
    Series,
    SeriesVolume,
    load_series_volume,
    read_study,
)
from mslesion.services.dicom.selection import select_series
from tests.services.dicom.synthetic import T1_PROTOCOL, require_tool, write_series


def _only_series(root: Path) -> Series:
    study = read_study(root)
    assert len(study.series) == 1
    return study.series[0]


def _files(root: Path) -> list[Path]:
    return sorted(root.rglob("IM*.dcm"))


def _edit(path: Path, **attributes: object) -> None:
    dataset = pydicom.dcmread(path)
    for keyword, value in attributes.items():
        setattr(dataset, keyword, value)
    dataset.save_as(path)


def _normal(path: Path) -> np.ndarray:
    iop = np.array([float(v) for v in pydicom.dcmread(path).ImageOrientationPatient])
    return np.cross(iop[:3], iop[3:])


def _reference(flair_dir: Path) -> SeriesVolume:
    return load_series_volume(_only_series(flair_dir))


# --------------------------------------------------------------------------- valid baseline


def test_valid_series_loads(flair_dir: Path) -> None:
    loaded = _reference(flair_dir)
    assert loaded.image.GetSize() == (64, 64, 20)
    assert loaded.image.GetPixelID() == sitk.sitkFloat32
    assert len(loaded.frames) == len(loaded.headers) == 20
    assert [f.frame_number for f in loaded.frames] == [None] * 20


# --------------------------------------------------------------------------- non-image series


def _basic_text_sr(path: Path, study: StudyInfo) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.88.11")  # Basic Text SR
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    sr = Dataset()
    sr.file_meta = meta
    sr.SOPClassUID = meta.MediaStorageSOPClassUID
    sr.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    sr.StudyInstanceUID = study.study_uid
    sr.SeriesInstanceUID = generate_uid()
    sr.SeriesNumber = 900
    sr.SeriesDescription = "Radiology report"
    sr.Modality = "SR"
    sr.PatientID = study.patient_id
    sr.ValueType = "CONTAINER"
    path.parent.mkdir(parents=True, exist_ok=True)
    sr.save_as(path, enforce_file_format=True)
    return path


def test_non_mr_series_is_rejected_and_cannot_be_loaded(
    flair_dir: Path, study_info: StudyInfo
) -> None:
    _basic_text_sr(flair_dir / "sr" / "report.dcm", study_info)
    study = read_study(flair_dir)
    sr = next(s for s in study.series if s.modality == "SR")
    selection = select_series(study, required=("flair",))
    assert selection.series["flair"].modality == "MR"
    line = next(d for d in selection.decisions if "Radiology report" in d)
    assert "rejected" in line and "modality SR" in line
    with pytest.raises(DicomInputError, match="modality SR is not MR") as caught:
        load_series_volume(sr)
    assert caught.value.series_uid == sr.series_uid
    assert sr.series_uid in str(caught.value) and "Radiology report" in str(caught.value)


def test_mr_series_with_a_foreign_sop_class_cannot_be_loaded(flair_dir: Path) -> None:
    for path in _files(flair_dir):
        dataset = pydicom.dcmread(path)
        dataset.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4.2"  # MR Spectroscopy Storage
        dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID
        dataset.save_as(path)
    with pytest.raises(DicomInputError, match=r"MR Spectroscopy Storage.*is not an MR image"):
        load_series_volume(_only_series(flair_dir))


# --------------------------------------------------------------------------- no FLAIR


def test_no_flair_lists_every_series_and_why(tmp_path: Path, study_info: StudyInfo) -> None:
    root = tmp_path / "study"
    write_series(root / "t1", study_info, description="t1_mprage_sag", number=2,
                 protocol=T1_PROTOCOL)  # fmt: skip
    write_series(root / "loc", study_info, description="3-Plane Loc", number=1,
                 protocol=T1_PROTOCOL)  # fmt: skip
    with pytest.raises(DicomInputError) as caught:
        select_series(read_study(root))
    message = str(caught.value)
    assert message.startswith("no FLAIR series in the study")
    assert "series 1 '3-Plane Loc'" in message and "localizer/scout" in message
    assert "series 2 't1_mprage_sag'" in message and "selected as T1" in message


# --------------------------------------------------------------------------- geometry


def test_moved_slice_is_inconsistent_spacing(flair_dir: Path) -> None:
    path = _files(flair_dir)[9]
    position = np.array([float(v) for v in pydicom.dcmread(path).ImagePositionPatient])
    moved = position + 1.2 * _normal(path)  # 1.2 mm off a 3 mm grid: not a multiple
    _edit(path, ImagePositionPatient=[f"{v:.6f}" for v in moved])
    series = _only_series(flair_dir)
    with pytest.raises(DicomInputError, match="inconsistent slice spacing") as caught:
        load_series_volume(series)
    message = str(caught.value)
    assert "'AX FLAIR'" in message and series.series_uid in message
    assert "expected a regular 3 mm gap" in message
    assert "1.8 mm" in message and "4.2 mm" in message  # the two gaps around the moved slice


def test_deleted_slice_is_missing_slice(flair_dir: Path) -> None:
    _files(flair_dir)[7].unlink()
    with pytest.raises(DicomInputError, match=r"missing slice\(s\): 1 slice\(s\) absent") as caught:
        load_series_volume(_only_series(flair_dir))
    assert "6 mm between" in str(caught.value)


def test_two_deleted_slices_are_counted(flair_dir: Path) -> None:
    for path in _files(flair_dir)[5:7]:
        path.unlink()
    with pytest.raises(DicomInputError, match=r"2 slice\(s\) absent"):
        load_series_volume(_only_series(flair_dir))


def test_duplicate_position_is_refused(flair_dir: Path) -> None:
    path = _files(flair_dir)[4]
    dataset = pydicom.dcmread(path)
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.InstanceNumber = 99
    dataset.save_as(path.with_name("copy.dcm"))
    with pytest.raises(DicomInputError, match=r"duplicate slice positions.*instance #99"):
        load_series_volume(_only_series(flair_dir))


def test_mixed_orientations_are_refused(flair_dir: Path) -> None:
    _edit(_files(flair_dir)[3], ImageOrientationPatient=[1, 0, 0, 0, 1, 0])
    with pytest.raises(DicomInputError, match="different ImageOrientationPatient"):
        load_series_volume(_only_series(flair_dir))


def test_mixed_pixel_spacing_is_refused(flair_dir: Path) -> None:
    _edit(_files(flair_dir)[3], PixelSpacing=[0.5, 0.5])
    with pytest.raises(DicomInputError, match="slices differ in PixelSpacing"):
        load_series_volume(_only_series(flair_dir))


def test_missing_position_names_the_file(flair_dir: Path) -> None:
    path = _files(flair_dir)[2]
    dataset = pydicom.dcmread(path)
    del dataset.ImagePositionPatient
    dataset.save_as(path)
    with pytest.raises(DicomInputError, match="missing or invalid ImagePositionPatient") as caught:
        load_series_volume(_only_series(flair_dir))
    assert str(path) in str(caught.value)


# --------------------------------------------------------------------------- damaged files


def test_truncated_file_is_named_when_the_series_is_assembled(flair_dir: Path) -> None:
    path = _files(flair_dir)[5]
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])  # the cut falls inside the pixel data
    series = _only_series(flair_dir)  # headers are intact: reading the study succeeds
    with pytest.raises(DicomInputError, match="truncated or corrupt file") as caught:
        load_series_volume(series)
    assert str(path) in str(caught.value)


def test_file_cut_inside_its_header_is_named_when_read(flair_dir: Path) -> None:
    path = _files(flair_dir)[5]
    path.write_bytes(path.read_bytes()[:400])
    with pytest.raises(DicomInputError, match="corrupt") as caught:
        read_study(flair_dir)
    assert str(path) in str(caught.value)


def test_garbage_with_dicm_prefix_is_an_error_naming_the_file(flair_dir: Path) -> None:
    garbage = bytearray(np.random.default_rng(3).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    garbage[128:132] = b"DICM"
    path = flair_dir / "broken.dcm"
    path.write_bytes(bytes(garbage))
    with pytest.raises(DicomInputError, match="corrupt") as caught:
        read_study(flair_dir)
    assert str(path) in str(caught.value)


def test_non_dicom_files_are_skipped_and_recorded(flair_dir: Path) -> None:
    (flair_dir / "README").write_text("exported by PACS\n")
    (flair_dir / "random.dcm").write_bytes(os.urandom(3000).replace(b"DICM", b"XXXX"))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MediaStorageDirectoryStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dicomdir = Dataset()
    dicomdir.file_meta = meta
    dicomdir.FileSetID = "EXPORT"
    dicomdir.save_as(flair_dir / "DICOMDIR", enforce_file_format=True)
    study = read_study(flair_dir)
    assert len(study.series) == 1 and study.series[0].n_instances == 20
    assert sorted(s.split(":")[0] for s in study.skipped) == ["DICOMDIR", "README", "random.dcm"]
    assert any("DICOMDIR (media directory" in s for s in study.skipped)


def test_folder_without_dicom_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(DicomInputError, match=r"no DICOM files found \(1 other file"):
        read_study(tmp_path)


def test_duplicate_copies_of_an_instance_are_read_once(flair_dir: Path) -> None:
    first = _files(flair_dir)[0]
    (flair_dir / "copy").mkdir()
    (flair_dir / "copy" / "again.dcm").write_bytes(first.read_bytes())
    study = read_study(flair_dir)
    assert study.series[0].n_instances == 20
    assert any("duplicate of SOP instance" in s for s in study.skipped)


# --------------------------------------------------------------------------- studies


def test_two_studies_mixed_are_refused(flair_dir: Path, study_info: StudyInfo) -> None:
    other = StudyInfo(patient_id=study_info.patient_id, study_date="20240301")
    write_series(flair_dir / "other", other, description="AX FLAIR", number=4)
    with pytest.raises(DicomInputError, match="mixes 2 studies") as caught:
        read_study(flair_dir)
    assert study_info.study_uid in str(caught.value) and other.study_uid in str(caught.value)


# --------------------------------------------------------------------------- transfer syntax


def _to_mpeg2(path: Path) -> None:
    dataset = pydicom.dcmread(path)
    dataset.file_meta.TransferSyntaxUID = MPEG2MPML
    dataset.PixelData = encapsulate([dataset.PixelData])
    dataset.save_as(path)


def test_unsupported_transfer_syntax_names_syntax_and_series(flair_dir: Path) -> None:
    _to_mpeg2(_files(flair_dir)[0])
    series = _only_series(flair_dir)
    with pytest.raises(DicomInputError) as caught:
        load_series_volume(series)
    message = str(caught.value)
    assert "unsupported transfer syntax MPEG2 Main Profile / Main Level" in message
    assert "1.2.840.10008.1.2.4.100" in message
    assert "'AX FLAIR'" in message and series.series_uid in message


def test_selection_rejects_an_undecodable_series(flair_dir: Path) -> None:
    _to_mpeg2(_files(flair_dir)[0])
    with pytest.raises(DicomInputError, match="no FLAIR series") as caught:
        select_series(read_study(flair_dir), required=("flair",))
    assert "rejected — unsupported transfer syntax MPEG2" in str(caught.value)


def test_rle_compressed_series_gives_the_same_volume(flair_dir: Path) -> None:
    expected = sitk.GetArrayFromImage(_reference(flair_dir).image)
    for path in _files(flair_dir):
        dataset = pydicom.dcmread(path)
        dataset.compress(RLELossless)
        dataset.save_as(path)
    series = _only_series(flair_dir)
    assert series.transfer_syntaxes == (RLELossless,)
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(load_series_volume(series).image), expected
    )


def test_jpeg_lossless_series_gives_the_same_volume(flair_dir: Path) -> None:
    tool = require_tool("dcmcjpeg")
    expected = sitk.GetArrayFromImage(_reference(flair_dir).image)
    for path in _files(flair_dir):
        compressed = path.with_suffix(".jpg.dcm")
        subprocess.run([tool, "+e1", str(path), str(compressed)], check=True, capture_output=True)
        compressed.replace(path)
    series = _only_series(flair_dir)
    assert series.transfer_syntaxes == ("1.2.840.10008.1.2.4.70",)  # JPEG lossless SV1
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(load_series_volume(series).image), expected
    )


# --------------------------------------------------------------------------- multi-frame


def _legacy_converted(flair_dir: Path, out: Path, sop_class: str | None = None) -> None:
    legacy = pytest.importorskip("highdicom.legacy")
    sources = [pydicom.dcmread(p) for p in _files(flair_dir)]
    enhanced = legacy.LegacyConvertedEnhancedMRImage(
        legacy_datasets=sources,
        series_instance_uid=generate_uid(),
        series_number=40,
        sop_instance_uid=generate_uid(),
        instance_number=1,
    )
    if sop_class is not None:
        enhanced.SOPClassUID = sop_class
        enhanced.file_meta.MediaStorageSOPClassUID = sop_class
    out.parent.mkdir(parents=True, exist_ok=True)
    enhanced.save_as(out)


@pytest.mark.parametrize("sop_class", [None, ENHANCED_MR_IMAGE_STORAGE])
def test_multi_frame_enhanced_mr_gives_the_same_volume(
    flair_dir: Path, tmp_path: Path, sop_class: str | None
) -> None:
    reference = _reference(flair_dir)
    _legacy_converted(flair_dir, tmp_path / "enhanced" / "mf.dcm", sop_class)
    series = _only_series(tmp_path / "enhanced")
    assert series.n_instances == 1 and series.n_frames == 20
    assert series.echo_time == 120.0 and series.inversion_time == 2500.0
    loaded = load_series_volume(series)
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(loaded.image), sitk.GetArrayFromImage(reference.image)
    )
    np.testing.assert_allclose(loaded.image.GetOrigin(), reference.image.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(loaded.image.GetSpacing(), reference.image.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(
        loaded.image.GetDirection(), reference.image.GetDirection(), atol=1e-6
    )
    numbers = [f.frame_number for f in loaded.frames]
    assert sorted(n for n in numbers if n is not None) == list(range(1, 21))
    assert {f.sop_instance_uid for f in loaded.frames} == {str(loaded.headers[0].SOPInstanceUID)}
    # z order: frame k's PlanePosition is the physical position of voxel (0, 0, k)
    for k in (0, 7, 19):
        header, frame = loaded.headers[k], loaded.frames[k]
        assert frame.frame_number is not None
        item = header.PerFrameFunctionalGroupsSequence[frame.frame_number - 1]
        ipp = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
        np.testing.assert_allclose(loaded.image.TransformIndexToPhysicalPoint((0, 0, k)), ipp,
                                   atol=1e-3)  # fmt: skip


def test_single_slice_is_not_a_volume(flair_dir: Path) -> None:
    for path in _files(flair_dir)[1:]:
        path.unlink()
    with pytest.raises(DicomInputError, match="a 3D volume needs at least 2"):
        load_series_volume(_only_series(flair_dir))


def test_echo_filter_without_match_is_explained(flair_dir: Path) -> None:
    with pytest.raises(DicomInputError, match="no image with echo time 55"):
        load_series_volume(_only_series(flair_dir), echo_time=55.0)


def test_volume_follows_positions_not_instance_numbers(flair_dir: Path) -> None:
    expected = sitk.GetArrayFromImage(_reference(flair_dir).image)
    order = np.random.default_rng(5).permutation(20)
    for path, number in zip(_files(flair_dir), order, strict=True):
        _edit(path, InstanceNumber=int(number) + 1)
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(load_series_volume(_only_series(flair_dir)).image), expected
    )
