"""DICOM SEG of the lesion mask, on a real GE MR series: validity, codes, pixels, geometry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.coding import Code
from scipy import ndimage

from mslesion.services.config import Settings
from mslesion.services.errors import InputError
from mslesion.services.reporting.seg import build_seg, patient_affine
from mslesion.services.segmentation.postprocess import LesionReport, describe_lesions
from tests.services.reporting.conftest import (
    LESIONS,
    MODEL_NAME,
    MODEL_VERSION,
    Outputs,
    sphere_mask,
)

pytestmark = pytest.mark.shared_data


def test_seg_passes_dciodvfy(outputs: Outputs, dciodvfy: Callable[[Path], str]) -> None:
    print(dciodvfy(outputs.seg_path))


def test_seg_header(outputs: Outputs, ge_series: list[pydicom.Dataset], settings: Settings) -> None:
    seg = outputs.seg
    assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
    assert seg.SeriesNumber == 9001
    assert "research use" in seg.SeriesDescription and "unverified" in seg.SeriesDescription
    assert seg.Manufacturer == settings.manufacturer
    assert seg.ManufacturerModelName == settings.manufacturer_model_name
    assert seg.DeviceSerialNumber == settings.device_serial_number
    assert seg.InstitutionName == settings.institution_name
    assert f"{MODEL_NAME} {MODEL_VERSION}" in list(seg.SoftwareVersions)
    assert seg.StudyInstanceUID == ge_series[0].StudyInstanceUID
    for uid in (seg.SeriesInstanceUID, seg.SOPInstanceUID):
        assert uid.startswith(settings.uid_root)
    assert seg.SeriesInstanceUID != ge_series[0].SeriesInstanceUID


def test_segment_codes_and_algorithm(outputs: Outputs) -> None:
    (segment,) = outputs.seg.SegmentSequence
    assert segment.SegmentNumber == 1 and segment.SegmentLabel == "MS lesion"
    assert _code(segment.SegmentedPropertyCategoryCodeSequence[0]) == Code(
        "49755003", "SCT", "Morphologically abnormal structure"
    )
    assert _code(segment.SegmentedPropertyTypeCodeSequence[0]) == Code("52988006", "SCT", "Lesion")
    assert _code(segment.AnatomicRegionSequence[0]) == Code("12738006", "SCT", "Brain")
    assert segment.SegmentAlgorithmType == "AUTOMATIC"
    algorithm = segment.SegmentationAlgorithmIdentificationSequence[0]
    assert MODEL_NAME in algorithm.AlgorithmName
    assert algorithm.AlgorithmVersion == MODEL_VERSION
    assert _code(algorithm.AlgorithmFamilyCodeSequence[0]) == Code(
        "123110", "DCM", "Artificial Intelligence"
    )


def test_seg_references_every_source_instance(
    outputs: Outputs, ge_series: list[pydicom.Dataset], lesion_mask: np.ndarray
) -> None:
    series_refs = outputs.seg.ReferencedSeriesSequence
    assert [s.SeriesInstanceUID for s in series_refs] == [ge_series[0].SeriesInstanceUID]
    referenced = {i.ReferencedSOPInstanceUID for i in series_refs[0].ReferencedInstanceSequence}
    assert referenced == {ds.SOPInstanceUID for ds in ge_series}
    # Each stored frame derives from the source slice at the same index of the mask.
    with_lesion = {
        ge_series[k].SOPInstanceUID for k in np.flatnonzero(lesion_mask.any(axis=(1, 2)))
    }
    frame_sources = {
        frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        for frame in outputs.seg.PerFrameFunctionalGroupsSequence
    }
    assert frame_sources == with_lesion


def test_seg_pixels_equal_mask(
    outputs: Outputs, ge_series: list[pydicom.Dataset], lesion_mask: np.ndarray
) -> None:
    pixels = outputs.seg.get_pixels_by_source_instance(
        [ds.SOPInstanceUID for ds in ge_series],
        segment_numbers=[1],
        assert_missing_frames_are_empty=True,
    )
    np.testing.assert_array_equal(pixels[..., 0], lesion_mask)
    assert outputs.seg.NumberOfFrames == int(lesion_mask.any(axis=(1, 2)).sum())


def test_largest_lesion_position_matches_centroid(
    outputs: Outputs, ge_series: list[pydicom.Dataset], lesion_report: LesionReport
) -> None:
    """The SEG's own geometry puts the largest lesion where the report's centroid says."""
    points = _segmented_points_mm(outputs.seg)
    labels, _ = ndimage.label(_seg_volume(outputs.seg), structure=np.ones((3, 3, 3)))
    flat_labels = labels[labels > 0]
    largest = np.bincount(flat_labels).argmax()
    seg_centroid = points[flat_labels == largest].mean(axis=0)

    voxel_mm = max(float(v) for v in ge_series[0].PixelSpacing)
    voxel_mm = max(voxel_mm, float(ge_series[0].SpacingBetweenSlices))
    report_centroid = np.array(lesion_report.lesions[0].centroid_mm)
    assert np.linalg.norm(seg_centroid - report_centroid) < voxel_mm
    # And where the sphere was drawn, computed from the source image's own header.
    (frame, row, column), _ = LESIONS[0]
    drawn = _source_point_mm(ge_series[frame], row, column)
    assert np.linalg.norm(seg_centroid - drawn) < voxel_mm


def test_patient_affine_matches_source_headers(ge_series: list[pydicom.Dataset]) -> None:
    affine = patient_affine(ge_series)
    for frame, row, column in ((0, 0, 0), (17, 200, 31), (len(ge_series) - 1, 255, 255)):
        expected = _source_point_mm(ge_series[frame], row, column)
        np.testing.assert_allclose(affine @ [frame, row, column, 1], [*expected, 1], atol=0.01)


def test_empty_mask_gives_empty_valid_seg(
    ge_series: list[pydicom.Dataset],
    settings: Settings,
    tmp_path: Path,
    dciodvfy: Callable[[Path], str],
) -> None:
    empty = np.zeros((len(ge_series), ge_series[0].Rows, ge_series[0].Columns), np.uint8)
    seg = build_seg(ge_series, empty, MODEL_NAME, MODEL_VERSION, settings)
    path = tmp_path / "empty.dcm"
    pydicom.dcmwrite(path, seg, enforce_file_format=True)
    dciodvfy(path)
    back = hd.seg.segread(path)
    assert back.NumberOfFrames == len(ge_series)  # all frames kept: none can be omitted
    assert [s.SegmentLabel for s in back.SegmentSequence] == ["MS lesion"]
    pixels = back.get_pixels_by_source_instance([ds.SOPInstanceUID for ds in ge_series])
    assert not pixels.any()


def test_multiframe_source(
    ge_series: list[pydicom.Dataset],
    settings: Settings,
    tmp_path: Path,
    dciodvfy: Callable[[Path], str],
) -> None:
    """One enhanced multi-frame MR (made from 40 of the slices) works like the single frames."""
    enhanced = hd.legacy.LegacyConvertedEnhancedMRImage(ge_series[40:80], hd.UID(), 99, hd.UID(), 1)
    frames = len(enhanced.PerFrameFunctionalGroupsSequence)
    assert frames == 40
    mask = sphere_mask((frames, enhanced.Rows, enhanced.Columns), (((20, 128, 128), 4),))
    seg = build_seg([enhanced], mask, MODEL_NAME, MODEL_VERSION, settings)
    path = tmp_path / "mf-seg.dcm"
    pydicom.dcmwrite(path, seg, enforce_file_format=True)
    dciodvfy(path)
    back = hd.seg.segread(path)
    pixels = back.get_pixels_by_source_frame(
        enhanced.SOPInstanceUID,
        list(range(1, frames + 1)),
        segment_numbers=[1],
        assert_missing_frames_are_empty=True,
    )
    np.testing.assert_array_equal(pixels[..., 0], mask)
    centroid = describe_lesions(mask, mask.astype(np.float32), patient_affine([enhanced]))
    position = enhanced.PerFrameFunctionalGroupsSequence[20].PlanePositionSequence[0]
    expected = _point_mm(position.ImagePositionPatient, ge_series[0], 128, 128)
    np.testing.assert_allclose(centroid.lesions[0].centroid_mm, expected, atol=0.01)


def test_mask_of_wrong_shape_is_refused(
    ge_series: list[pydicom.Dataset], settings: Settings
) -> None:
    mask = np.zeros((len(ge_series) - 1, ge_series[0].Rows, ge_series[0].Columns), np.uint8)
    with pytest.raises(InputError, match="native FLAIR grid"):
        build_seg(ge_series, mask, MODEL_NAME, MODEL_VERSION, settings)


def test_non_binary_mask_is_refused(ge_series: list[pydicom.Dataset], settings: Settings) -> None:
    mask = np.zeros((len(ge_series), ge_series[0].Rows, ge_series[0].Columns), np.uint8)
    mask[3, 3, 3] = 2
    with pytest.raises(InputError, match="binary"):
        build_seg(ge_series, mask, MODEL_NAME, MODEL_VERSION, settings)


def test_unsorted_series_is_refused(ge_series: list[pydicom.Dataset], settings: Settings) -> None:
    shuffled = [ge_series[1], ge_series[0], *ge_series[2:]]
    mask = np.zeros((len(ge_series), ge_series[0].Rows, ge_series[0].Columns), np.uint8)
    with pytest.raises(InputError, match="evenly spaced"):
        build_seg(shuffled, mask, MODEL_NAME, MODEL_VERSION, settings)


def test_source_datasets_are_not_modified(
    outputs: Outputs, ge_series: list[pydicom.Dataset]
) -> None:
    """The output repairs an over-long de-identification code value; the source keeps its own."""
    source_codes = [i.get("CodeValue") for i in ge_series[0].DeidentificationMethodCodeSequence]
    assert "replace_recognizable" in source_codes
    seg_items = outputs.seg.DeidentificationMethodCodeSequence
    assert "replace_recognizable" in [i.get("LongCodeValue") for i in seg_items]


def _code(item: pydicom.Dataset) -> Code:
    return Code(item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning)


def _point_mm(position: list, reference: pydicom.Dataset, row: float, column: float) -> np.ndarray:
    """DICOM PS3.3 C.7.6.2.1.1: pixel (row, column) of a plane at ``position``, in mm."""
    orientation = np.array([float(v) for v in reference.ImageOrientationPatient])
    row_spacing, column_spacing = (float(v) for v in reference.PixelSpacing)
    return (
        np.array([float(v) for v in position])
        + column * column_spacing * orientation[:3]
        + row * row_spacing * orientation[3:]
    )


def _source_point_mm(image: pydicom.Dataset, row: float, column: float) -> np.ndarray:
    return _point_mm(image.ImagePositionPatient, image, row, column)


def _frame_planes(seg: hd.seg.Segmentation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame position, shared orientation and pixel spacing, from the SEG alone."""
    shared = seg.SharedFunctionalGroupsSequence[0]
    orientation = np.array(
        [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient]
    )
    spacing = np.array([float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing])
    positions = np.array(
        [
            [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]
            for frame in seg.PerFrameFunctionalGroupsSequence
        ]
    )
    return positions, orientation, spacing


def _segmented_points_mm(seg: hd.seg.Segmentation) -> np.ndarray:
    """Patient coordinates of every segmented pixel, in the order of :func:`_seg_volume`."""
    positions, orientation, spacing = _frame_planes(seg)
    order = _frame_order(positions, orientation)
    points = []
    for index in order:
        rows, columns = np.nonzero(seg.pixel_array[index])
        points.append(
            positions[index]
            + np.outer(columns * spacing[1], orientation[:3])
            + np.outer(rows * spacing[0], orientation[3:])
        )
    return np.concatenate(points)


def _seg_volume(seg: hd.seg.Segmentation) -> np.ndarray:
    """The stored frames as a 3D array, frames placed by their distance along the normal."""
    positions, orientation, _ = _frame_planes(seg)
    order = _frame_order(positions, orientation)
    normal = np.cross(orientation[:3], orientation[3:])
    distance = positions[order] @ normal
    gaps = np.diff(distance)
    step = float(gaps[gaps > 1e-3].min())  # lesion frames include neighbours: the true step
    slots = np.rint((distance - distance[0]) / step).astype(int)
    volume = np.zeros((slots[-1] + 1, seg.Rows, seg.Columns), np.uint8)
    volume[slots] = seg.pixel_array[order]
    return volume


def _frame_order(positions: np.ndarray, orientation: np.ndarray) -> np.ndarray:
    normal = np.cross(orientation[:3], orientation[3:])
    return np.argsort(positions @ normal, kind="stable")


def test_source_without_study_id(
    ge_series: list[pydicom.Dataset], lesion_mask: np.ndarray, settings: Settings
) -> None:
    """Type 2 attributes missing from the source get empty values; the source stays as is."""
    first = pydicom.Dataset({element.tag: element for element in ge_series[0]})
    del first.StudyID
    seg = build_seg([first, *ge_series[1:]], lesion_mask, MODEL_NAME, MODEL_VERSION, settings)
    assert "StudyID" in seg and not seg.StudyID
    assert "StudyID" not in first
