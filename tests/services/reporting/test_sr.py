"""TID 1500 measurement report of the lesions: validity, flags, numbers, references."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.coding import Code

from mslesion.services.config import Settings
from mslesion.services.errors import InputError
from mslesion.services.reporting.seg import build_seg
from mslesion.services.reporting.sr import (
    MAX_LESION_GROUPS,
    NUMBER_OF_LESIONS,
    VOLUME,
    build_sr,
)
from mslesion.services.segmentation.postprocess import Lesion, LesionReport
from tests.services.reporting.conftest import (
    BRAIN_VOLUME_ML,
    MODEL_NAME,
    MODEL_VERSION,
    Outputs,
)

pytestmark = pytest.mark.shared_data

BRAIN = Code("12738006", "SCT", "Brain")
REL = 1e-9  # DS keeps 16 characters: volumes come back to about 14 significant digits


def test_sr_passes_dciodvfy(outputs: Outputs, dciodvfy: Callable[[Path], str]) -> None:
    print(dciodvfy(outputs.sr_path))


def test_sr_flags_and_header(outputs: Outputs, settings: Settings) -> None:
    sr = outputs.sr
    assert sr.SOPClassUID == pydicom.uid.Comprehensive3DSRStorage
    assert sr.VerificationFlag == "UNVERIFIED"
    assert sr.CompletionFlag == "COMPLETE"
    assert sr.PreliminaryFlag == "PRELIMINARY"
    assert sr.SeriesNumber == 9002
    assert "research use" in sr.SeriesDescription and "unverified" in sr.SeriesDescription
    assert sr.Manufacturer == settings.manufacturer
    assert sr.InstitutionName == settings.institution_name
    assert sr.SOPInstanceUID.startswith(settings.uid_root)
    assert sr.StudyInstanceUID == outputs.seg.StudyInstanceUID


def test_report_is_tid1500_with_device_observer(outputs: Outputs, settings: Settings) -> None:
    root = outputs.sr.ContentSequence
    assert outputs.sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    text = {_name(i): i.get("TextValue") for i in root if i.ValueType == "TEXT"}
    assert text["Device Observer Name"] == f"mslesion {MODEL_NAME}"
    assert text["Device Observer Manufacturer"] == settings.manufacturer
    assert text["Device Observer Model Name"] == settings.manufacturer_model_name
    assert text["Device Observer Serial Number"] == settings.device_serial_number
    codes = {_name(i): i.ConceptCodeSequence[0].CodeValue for i in root if i.ValueType == "CODE"}
    assert codes["Observer Type"] == "121007"
    assert codes["Procedure reported"] == "24590-2"


def test_all_lesions_group(outputs: Outputs, lesion_report: LesionReport) -> None:
    group = _volumetric_group(outputs.sr, "All MS lesions")
    assert _value(group, VOLUME) == pytest.approx(lesion_report.total_volume_ml, rel=REL)
    (count,) = group.get_measurements(name=NUMBER_OF_LESIONS)
    assert count.value == lesion_report.lesion_count == 2
    assert count.unit.value == "{lesions}"
    assert group.get_measurements(name=VOLUME)[0].unit.value == "ml"
    assert group.finding_type is not None and group.finding_type.value == "52988006"
    assert [site.value.value for site in group.finding_sites] == ["12738006"]


def test_per_lesion_groups(outputs: Outputs, lesion_report: LesionReport) -> None:
    for rank, lesion in enumerate(lesion_report.lesions, start=1):
        group = _volumetric_group(outputs.sr, f"lesion {rank}")
        assert _value(group, VOLUME) == pytest.approx(lesion.volume_ml, rel=REL)
        assert group.tracking_uid is not None
    uids = {g.tracking_uid for g in _report(outputs.sr).get_volumetric_roi_measurement_groups()}
    assert len(uids) == 1 + lesion_report.lesion_count  # every group its own UID


def test_groups_reference_the_seg_segment(outputs: Outputs) -> None:
    groups = _report(outputs.sr).get_volumetric_roi_measurement_groups()
    assert len(groups) == 3
    for group in groups:
        segment = group.referenced_segment
        assert segment is not None
        referenced = segment[0].ReferencedSOPSequence[0]
        assert referenced.ReferencedSegmentNumber == 1
        assert referenced.ReferencedSOPInstanceUID == outputs.seg.SOPInstanceUID
        assert referenced.ReferencedSOPClassUID == outputs.seg.SOPClassUID
    evidence = {uids[2] for uids in outputs.sr.get_evidence(current_procedure_only=True)}
    assert outputs.seg.SOPInstanceUID in evidence


def test_algorithm_identification(outputs: Outputs) -> None:
    group = _volumetric_group(outputs.sr, "All MS lesions")
    text = {_name(i): i.get("TextValue") for i in group[0].ContentSequence if i.ValueType == "TEXT"}
    assert text["Algorithm Name"] == f"mslesion {MODEL_NAME}"
    assert text["Algorithm Version"] == MODEL_VERSION


def test_brain_volume(outputs: Outputs) -> None:
    (group,) = _report(outputs.sr).get_image_measurement_groups(finding_site=BRAIN)
    assert group.tracking_identifier == "Brain"
    assert _value(group, VOLUME) == pytest.approx(BRAIN_VOLUME_ML, rel=REL)


def test_empty_mask_report(
    ge_series: list[pydicom.Dataset],
    settings: Settings,
    tmp_path: Path,
    dciodvfy: Callable[[Path], str],
) -> None:
    empty = np.zeros((len(ge_series), ge_series[0].Rows, ge_series[0].Columns), np.uint8)
    seg = build_seg(ge_series, empty, MODEL_NAME, MODEL_VERSION, settings)
    nothing = LesionReport(lesion_count=0, total_volume_ml=0.0, lesions=[])
    sr = build_sr(ge_series, seg, nothing, BRAIN_VOLUME_ML, MODEL_NAME, MODEL_VERSION, settings)
    path = tmp_path / "empty-sr.dcm"
    pydicom.dcmwrite(path, sr, enforce_file_format=True)
    dciodvfy(path)
    back = hd.sr.srread(path)
    assert isinstance(back, hd.sr.Comprehensive3DSR)
    groups = _report(back).get_volumetric_roi_measurement_groups()
    assert [g.tracking_identifier for g in groups] == ["All MS lesions"]
    assert _value(groups[0], VOLUME) == 0.0
    assert groups[0].get_measurements(name=NUMBER_OF_LESIONS)[0].value == 0


def test_per_lesion_groups_are_capped(
    outputs: Outputs, ge_series: list[pydicom.Dataset], settings: Settings
) -> None:
    cap = 5
    many = [
        Lesion(
            label=i,
            voxels=i,
            volume_ml=i / 1000,
            centroid_voxel=(0.0, 0.0, 0.0),
            centroid_mm=(0.0, 0.0, 0.0),
            max_probability=1.0,
        )
        for i in range(1, cap + 4)
    ]
    total = sum(lesion.volume_ml for lesion in many)
    report = LesionReport(lesion_count=len(many), total_volume_ml=total, lesions=many)
    sr = build_sr(
        ge_series,
        outputs.seg,
        report,
        BRAIN_VOLUME_ML,
        MODEL_NAME,
        MODEL_VERSION,
        settings,
        max_lesion_groups=cap,
    )
    report_back = _report(hd.sr.Comprehensive3DSR.from_dataset(sr))
    groups = report_back.get_volumetric_roi_measurement_groups()
    assert [g.tracking_identifier for g in groups[1:]] == [f"lesion {k}" for k in range(1, cap + 1)]
    assert groups[0].get_measurements(name=NUMBER_OF_LESIONS)[0].value == len(many)
    assert _value(groups[0], VOLUME) == pytest.approx(total)
    # Largest first: the three smallest are the ones left out.
    assert _value(groups[1], VOLUME) == pytest.approx(len(many) / 1000)
    assert _value(groups[-1], VOLUME) == pytest.approx(4 / 1000)


def test_default_cap_is_documented_value() -> None:
    assert MAX_LESION_GROUPS == 200


def test_seg_of_other_images_is_refused(
    outputs: Outputs,
    ge_series: list[pydicom.Dataset],
    lesion_report: LesionReport,
    settings: Settings,
) -> None:
    with pytest.raises(InputError, match="not among the source images"):
        build_sr(
            ge_series[:10],
            outputs.seg,
            lesion_report,
            BRAIN_VOLUME_ML,
            MODEL_NAME,
            MODEL_VERSION,
            settings,
        )


@pytest.mark.parametrize("brain_ml", [-1.0, float("nan"), float("inf")])
def test_bad_brain_volume_is_refused(
    outputs: Outputs,
    ge_series: list[pydicom.Dataset],
    lesion_report: LesionReport,
    settings: Settings,
    brain_ml: float,
) -> None:
    with pytest.raises(InputError, match="brain volume"):
        build_sr(
            ge_series, outputs.seg, lesion_report, brain_ml, MODEL_NAME, MODEL_VERSION, settings
        )


def _report(sr: hd.sr.Comprehensive3DSR) -> hd.sr.MeasurementReport:
    content = sr.content
    assert isinstance(content, hd.sr.MeasurementReport)
    return content


def _volumetric_group(
    sr: hd.sr.Comprehensive3DSR, tracking_id: str
) -> hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations:
    groups = [
        g
        for g in _report(sr).get_volumetric_roi_measurement_groups()
        if g.tracking_identifier == tracking_id
    ]
    assert len(groups) == 1, f"expected one group {tracking_id!r}, found {len(groups)}"
    return groups[0]


def _value(
    group: hd.sr.MeasurementsAndQualitativeEvaluations
    | hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations,
    name: Code,
) -> float:
    (measurement,) = group.get_measurements(name=name)
    return float(measurement.value)


def _name(item: pydicom.Dataset) -> str:
    return str(item.ConceptNameCodeSequence[0].CodeMeaning)
