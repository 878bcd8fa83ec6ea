"""Follow-up SR: persistent tracking identities, prior volumes, changes, prior study, validity."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import highdicom as hd
import pydicom
import pytest
from pydicom.sr.coding import Code

from mslesion.services.errors import InputError
from mslesion.services.followup.model import ChangeCategory, FollowUpReport, Location
from mslesion.services.reporting.followup_seg import SEGMENT_NUMBERS, build_followup_seg
from mslesion.services.reporting.followup_sr import (
    LOCATION_CODES,
    MCDONALD_LOCATION,
    MRI_ACTIVITY,
    PRIOR_STUDY_UID,
    PRIOR_VOLUME,
    QUALITATIVE_DIFFERENCE,
    build_followup_sr,
)
from mslesion.services.reporting.sr import NUMBER_OF_LESIONS, VOLUME
from tests.services.reporting.followup_fixtures import (
    MODEL_NAME,
    MODEL_VERSION,
    FollowUpCase,
    make_case,
)

REL = 1e-9
CHANGE_VALUES = {
    ChangeCategory.NEW: "7147002",
    ChangeCategory.ENLARGING: "35105006",
    ChangeCategory.STABLE: "58158008",
    ChangeCategory.SHRINKING: "1250004",
    ChangeCategory.DISAPPEARED: "272519000",
}
Group = (
    hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations
    | hd.sr.MeasurementsAndQualitativeEvaluations
)


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> FollowUpCase:
    return make_case(tmp_path_factory.mktemp("followup-sr"))


@pytest.fixture(scope="module")
def seg(case: FollowUpCase) -> hd.seg.Segmentation:
    return build_followup_seg(
        case.current_sources, case.analysis.category_map, MODEL_NAME, MODEL_VERSION, case.settings
    )


@pytest.fixture(scope="module")
def sr_path(
    case: FollowUpCase, seg: hd.seg.Segmentation, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    sr = build_followup_sr(
        case.current_sources,
        seg,
        case.analysis.report,
        MODEL_NAME,
        MODEL_VERSION,
        case.settings,
        case.prior_sources,
    )
    path = tmp_path_factory.mktemp("followup-sr-out") / "sr.dcm"
    pydicom.dcmwrite(path, sr, enforce_file_format=True)
    return path


@pytest.fixture(scope="module")
def sr(sr_path: Path) -> hd.sr.Comprehensive3DSR:
    back = hd.sr.srread(sr_path)
    assert isinstance(back, hd.sr.Comprehensive3DSR)
    return back


def test_sr_passes_dciodvfy(sr_path: Path, dciodvfy: Callable[[Path], str]) -> None:
    print(dciodvfy(sr_path))  # warnings only: dciodvfy does not know the private scheme


def test_flags_and_header(sr: hd.sr.Comprehensive3DSR, case: FollowUpCase) -> None:
    assert sr.CompletionFlag == "COMPLETE"
    assert sr.VerificationFlag == "UNVERIFIED"
    assert sr.PreliminaryFlag == "PRELIMINARY"
    assert sr.SeriesNumber == 9004
    assert "research use" in sr.SeriesDescription and "unverified" in sr.SeriesDescription
    assert sr.StudyInstanceUID == case.current_sources[0].StudyInstanceUID
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    (scheme,) = sr.CodingSchemeIdentificationSequence
    assert scheme.CodingSchemeDesignator == "99MSLESION"


def test_lesion_groups_carry_the_persistent_identities(
    sr: hd.sr.Comprehensive3DSR, case: FollowUpCase
) -> None:
    report = case.analysis.report
    groups = _lesion_groups(sr, report)
    assert set(groups) == {les.tracking_id for les in report.lesions}
    for lesion in report.lesions:
        assert groups[lesion.tracking_id].tracking_uid == lesion.tracking_uid  # not a new UID


def test_volumes_now_and_at_the_prior(sr: hd.sr.Comprehensive3DSR, case: FollowUpCase) -> None:
    groups = _lesion_groups(sr, case.analysis.report)
    for lesion in case.analysis.report.lesions:
        group = groups[lesion.tracking_id]
        assert _value(group, VOLUME) == pytest.approx(lesion.volume_ml, rel=REL)
        assert _value(group, PRIOR_VOLUME) == pytest.approx(lesion.prior_volume_ml, rel=REL)
        (prior,) = group.get_measurements(name=PRIOR_VOLUME)
        assert prior.unit.value == "ml" and prior.name.meaning == "Volume at prior study"


def test_change_and_location_evaluations(sr: hd.sr.Comprehensive3DSR, case: FollowUpCase) -> None:
    groups = _lesion_groups(sr, case.analysis.report)
    for lesion in case.analysis.report.lesions:
        evaluations = _evaluations(groups[lesion.tracking_id])
        assert evaluations[QUALITATIVE_DIFFERENCE.value] == CHANGE_VALUES[lesion.category]
        assert evaluations[MCDONALD_LOCATION.value] == LOCATION_CODES[lesion.location].value
    assert len({c.value for c in LOCATION_CODES.values()}) == len(Location)


def test_current_lesions_reference_their_category_segment(
    sr: hd.sr.Comprehensive3DSR, seg: hd.seg.Segmentation, case: FollowUpCase
) -> None:
    groups = _lesion_groups(sr, case.analysis.report)
    for lesion in case.analysis.report.lesions:
        group = groups[lesion.tracking_id]
        if lesion.category == ChangeCategory.DISAPPEARED:
            assert not isinstance(
                group, hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations
            )  # TID 1501: no voxels now, no segment
            assert _value(group, VOLUME) == 0.0 and lesion.prior_volume_ml > 0
            continue
        assert isinstance(group, hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations)
        segment = group.referenced_segment
        assert segment is not None
        referenced = segment[0].ReferencedSOPSequence[0]
        assert referenced.ReferencedSOPInstanceUID == seg.SOPInstanceUID
        assert referenced.ReferencedSegmentNumber == SEGMENT_NUMBERS[lesion.category]


def test_category_and_summary_groups(sr: hd.sr.Comprehensive3DSR, case: FollowUpCase) -> None:
    report = case.analysis.report
    by_id = {g.tracking_identifier: g for g in _all_groups(sr)}
    names = {
        ChangeCategory.NEW: "New lesions",
        ChangeCategory.ENLARGING: "Enlarging lesions",
        ChangeCategory.STABLE: "Stable lesions",
        ChangeCategory.SHRINKING: "Shrinking lesions",
        ChangeCategory.DISAPPEARED: "Disappeared lesions",
    }
    for category, name in names.items():
        group = by_id[name]
        assert _value(group, NUMBER_OF_LESIONS) == report.counts[category]
        members = [les for les in report.lesions if les.category == category]
        assert _value(group, PRIOR_VOLUME) == pytest.approx(
            sum(m.prior_volume_ml for m in members), rel=REL
        )
    summary = by_id["Follow-up summary"]
    assert _evaluations(summary)[MRI_ACTIVITY.value] == "373066001"  # Yes
    assert _value(summary, VOLUME) == pytest.approx(report.total_volume_ml, rel=REL)
    assert _value(summary, PRIOR_VOLUME) == pytest.approx(report.prior_total_volume_ml, rel=REL)
    assert _prior_study_uid(summary) == report.prior_study_instance_uid


def test_prior_study_is_other_evidence(sr: hd.sr.Comprehensive3DSR, case: FollowUpCase) -> None:
    (other,) = sr.PertinentOtherEvidenceSequence
    assert other.StudyInstanceUID == case.analysis.report.prior_study_instance_uid
    referenced = {
        item.ReferencedSOPInstanceUID
        for series in other.ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    }
    assert referenced == {ds.SOPInstanceUID for ds in case.prior_sources}
    (current,) = sr.CurrentRequestedProcedureEvidenceSequence
    assert current.StudyInstanceUID == case.current_sources[0].StudyInstanceUID


def test_without_prior_images_the_prior_study_is_still_named(
    case: FollowUpCase, seg: hd.seg.Segmentation
) -> None:
    sr = build_followup_sr(
        case.current_sources, seg, case.analysis.report, MODEL_NAME, MODEL_VERSION, case.settings
    )
    assert "PertinentOtherEvidenceSequence" not in sr
    back = hd.sr.Comprehensive3DSR.from_dataset(sr)
    summary = next(g for g in _all_groups(back) if g.tracking_identifier == "Follow-up summary")
    assert _prior_study_uid(summary) == case.analysis.report.prior_study_instance_uid


def test_cap_keeps_active_lesions_first(case: FollowUpCase, seg: hd.seg.Segmentation) -> None:
    sr = build_followup_sr(
        case.current_sources,
        seg,
        case.analysis.report,
        MODEL_NAME,
        MODEL_VERSION,
        case.settings,
        max_lesion_groups=3,
    )
    back = hd.sr.Comprehensive3DSR.from_dataset(sr)
    report = case.analysis.report
    lesion_uids = {les.tracking_uid: les for les in report.lesions}
    kept = [lesion_uids[g.tracking_uid] for g in _all_groups(back) if g.tracking_uid in lesion_uids]
    assert [les.category for les in kept] == [
        ChangeCategory.NEW,
        ChangeCategory.NEW,
        ChangeCategory.ENLARGING,
    ]
    new_group = next(g for g in _all_groups(back) if g.tracking_identifier == "New lesions")
    assert _value(new_group, NUMBER_OF_LESIONS) == 2  # counts cover every lesion


def test_inconsistent_inputs_are_refused(case: FollowUpCase, seg: hd.seg.Segmentation) -> None:
    report = case.analysis.report
    with pytest.raises(InputError, match="not among the current images"):
        build_followup_sr(
            case.current_sources[:3], seg, report, MODEL_NAME, MODEL_VERSION, case.settings
        )
    swapped = report.model_copy(update={"prior_study_instance_uid": "1.2.3.4"})
    with pytest.raises(InputError, match="prior images belong to study"):
        build_followup_sr(
            case.current_sources,
            seg,
            swapped,
            MODEL_NAME,
            MODEL_VERSION,
            case.settings,
            case.prior_sources,
        )
    endless = report.model_copy(update={"total_volume_ml": float("inf")})
    with pytest.raises(InputError, match="finite"):
        build_followup_sr(
            case.current_sources, seg, endless, MODEL_NAME, MODEL_VERSION, case.settings
        )


def _all_groups(sr: hd.sr.Comprehensive3DSR) -> list[Group]:
    content = sr.content
    assert isinstance(content, hd.sr.MeasurementReport)
    return [
        *content.get_volumetric_roi_measurement_groups(),
        *content.get_image_measurement_groups(),
    ]


def _lesion_groups(sr: hd.sr.Comprehensive3DSR, report: FollowUpReport) -> dict[str, Group]:
    ids = {les.tracking_id for les in report.lesions}
    groups = [g for g in _all_groups(sr) if g.tracking_identifier in ids]
    assert len(groups) == len({g.tracking_identifier for g in groups})  # one group per lesion
    return {str(g.tracking_identifier): g for g in groups}


def _value(group: Group, name: Code) -> float:
    (measurement,) = group.get_measurements(name=name)
    return float(measurement.value)


def _evaluations(group: Group) -> dict[str, str]:
    """Concept name code -> value code of the group's CODE items."""
    return {e.name.value: e.value.value for e in group.get_qualitative_evaluations()}


def _prior_study_uid(group: Group) -> str:
    items = [
        item
        for item in group[0].ContentSequence
        if item.ValueType == "UIDREF"
        and item.ConceptNameCodeSequence[0].CodeValue == PRIOR_STUDY_UID.value
    ]
    assert len(items) == 1
    return str(items[0].UID)
