"""Follow-up SEG: one segment per change category, codes, colours, voxels, validity."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.coding import Code

from mslesion.services.errors import InputError
from mslesion.services.followup.analysis import CATEGORY_VALUE
from mslesion.services.followup.model import ChangeCategory
from mslesion.services.reporting.followup_seg import (
    CATEGORY_RGB,
    SEGMENT_NUMBERS,
    build_followup_seg,
)
from tests.services.reporting.followup_fixtures import (
    MODEL_NAME,
    MODEL_VERSION,
    FollowUpCase,
    make_case,
)

EXPECTED = {
    ChangeCategory.NEW: (1, "New MS lesions", Code("7147002", "SCT", "New")),
    ChangeCategory.ENLARGING: (2, "Enlarging MS lesions", Code("35105006", "SCT", "Increased")),
    ChangeCategory.STABLE: (3, "Stable MS lesions", Code("58158008", "SCT", "Stable")),
    ChangeCategory.SHRINKING: (4, "Shrinking MS lesions", Code("1250004", "SCT", "Decreased")),
}


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> FollowUpCase:
    return make_case(tmp_path_factory.mktemp("followup-seg"))


@pytest.fixture(scope="module")
def seg_path(case: FollowUpCase, tmp_path_factory: pytest.TempPathFactory) -> Path:
    seg = build_followup_seg(
        case.current_sources, case.analysis.category_map, MODEL_NAME, MODEL_VERSION, case.settings
    )
    path = tmp_path_factory.mktemp("followup-seg-out") / "seg.dcm"
    pydicom.dcmwrite(path, seg, enforce_file_format=True)
    return path


@pytest.fixture(scope="module")
def seg(seg_path: Path) -> hd.seg.Segmentation:
    return hd.seg.segread(seg_path)


def test_seg_passes_dciodvfy(seg_path: Path, dciodvfy: Callable[[Path], str]) -> None:
    print(dciodvfy(seg_path))


def test_header(seg: hd.seg.Segmentation, case: FollowUpCase) -> None:
    assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
    assert seg.SeriesNumber == 9003
    assert seg.SeriesDescription == "MS lesion change (research use, unverified)"
    assert seg.StudyInstanceUID == case.current_sources[0].StudyInstanceUID
    assert seg.SeriesInstanceUID.startswith(case.settings.uid_root)
    assert seg.Manufacturer == case.settings.manufacturer
    assert f"{MODEL_NAME} {MODEL_VERSION}" in list(seg.SoftwareVersions)


def test_one_segment_per_category_with_codes(seg: hd.seg.Segmentation) -> None:
    segments = {s.SegmentNumber: s for s in seg.SegmentSequence}
    assert sorted(segments) == [1, 2, 3, 4]
    for category, (number, label, modifier) in EXPECTED.items():
        assert SEGMENT_NUMBERS[category] == number
        segment = segments[number]
        assert segment.SegmentLabel == label
        assert _code(segment.SegmentedPropertyCategoryCodeSequence[0]) == (
            "49755003",
            "SCT",
            "Morphologically abnormal structure",
        )
        type_item = segment.SegmentedPropertyTypeCodeSequence[0]
        assert _code(type_item) == ("52988006", "SCT", "Lesion")
        modifiers = type_item.SegmentedPropertyTypeModifierCodeSequence
        assert [_code(m) for m in modifiers] == [_tuple(modifier)]
        assert _code(segment.AnatomicRegionSequence[0]) == ("12738006", "SCT", "Brain")
        assert segment.SegmentAlgorithmType == "AUTOMATIC"
        algorithm = segment.SegmentationAlgorithmIdentificationSequence[0]
        assert MODEL_NAME in algorithm.AlgorithmName
        assert algorithm.AlgorithmVersion == MODEL_VERSION


def test_display_colours_are_distinct(seg: hd.seg.Segmentation) -> None:
    colours = {tuple(s.RecommendedDisplayCIELabValue) for s in seg.SegmentSequence}
    assert len(colours) == 4
    assert len(set(CATEGORY_RGB.values())) == 4
    # New is yellow and enlarging orange: strong red and green, little blue.
    for category in (ChangeCategory.NEW, ChangeCategory.ENLARGING):
        red, green, blue = CATEGORY_RGB[category]
        assert red == 255 and green >= 100 and blue < 50


def test_voxels_per_segment_equal_category_map(
    seg: hd.seg.Segmentation, case: FollowUpCase
) -> None:
    uids = [ds.SOPInstanceUID for ds in case.current_sources]
    pixels = seg.get_pixels_by_source_instance(
        uids, segment_numbers=[1, 2, 3, 4], assert_missing_frames_are_empty=True
    )
    category_map = case.analysis.category_map
    for category, number in SEGMENT_NUMBERS.items():
        expected = category_map == CATEGORY_VALUE[category]
        assert expected.any()
        np.testing.assert_array_equal(pixels[..., number - 1] > 0, expected)


def test_frames_reference_the_source_at_the_same_index(
    seg: hd.seg.Segmentation, case: FollowUpCase
) -> None:
    """Only frames with lesions are stored, each derived from the slice it lies on."""
    sources = {ds.SOPInstanceUID: k for k, ds in enumerate(case.current_sources)}
    category_map = case.analysis.category_map
    stored = 0
    for frame in seg.PerFrameFunctionalGroupsSequence:
        uid = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        number = frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        category = next(c for c, n in SEGMENT_NUMBERS.items() if n == number)
        assert (category_map[sources[uid]] == CATEGORY_VALUE[category]).any()
        stored += 1
    per_category = [
        int((category_map == CATEGORY_VALUE[c]).any(axis=(1, 2)).sum()) for c in SEGMENT_NUMBERS
    ]
    assert stored == sum(per_category)


def test_map_without_lesions_still_gives_four_segments(case: FollowUpCase) -> None:
    empty = np.zeros_like(case.analysis.category_map)
    seg = build_followup_seg(case.current_sources, empty, MODEL_NAME, MODEL_VERSION, case.settings)
    assert [s.SegmentNumber for s in seg.SegmentSequence] == [1, 2, 3, 4]


def test_wrong_shape_or_values_are_refused(case: FollowUpCase) -> None:
    category_map = case.analysis.category_map
    with pytest.raises(InputError, match="shape"):
        build_followup_seg(
            case.current_sources, category_map[1:], MODEL_NAME, MODEL_VERSION, case.settings
        )
    bad = category_map.copy()
    bad[0, 0, 0] = 7
    with pytest.raises(InputError, match=r"values \[7\]"):
        build_followup_seg(case.current_sources, bad, MODEL_NAME, MODEL_VERSION, case.settings)


def _code(item: pydicom.Dataset) -> tuple[str, str, str]:
    """Value, scheme and meaning: pydicom's Code equality ignores the meaning."""
    return (item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning)


def _tuple(code: Code) -> tuple[str, str, str]:
    return (code.value, code.scheme_designator, code.meaning)
