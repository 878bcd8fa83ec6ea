"""JSON study report: same numbers as the SR, round trip, no patient identity."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from mslesion.services.errors import InputError
from mslesion.services.reporting.identity import RESEARCH_DISCLAIMER
from mslesion.services.reporting.json_report import (
    SeriesUsed,
    StudyReport,
    build_study_report,
    read_json_report,
    series_used,
    write_json_report,
)
from mslesion.services.segmentation.postprocess import LesionReport
from tests.services.reporting.conftest import BRAIN_VOLUME_ML, MODEL_NAME, MODEL_VERSION, Outputs

pytestmark = pytest.mark.shared_data


@pytest.fixture
def study_report(
    outputs: Outputs, ge_series: list[pydicom.Dataset], lesion_report: LesionReport
) -> StudyReport:
    return build_study_report(
        ge_series,
        lesion_report,
        BRAIN_VOLUME_ML,
        MODEL_NAME,
        MODEL_VERSION,
        series={"flair": series_used(ge_series[0])},
        timings_s={"inference_s": 12.5, "total_s": 20.0},
        seg=outputs.seg,
        sr=outputs.sr,
    )


def test_numbers_and_links(
    study_report: StudyReport,
    outputs: Outputs,
    ge_series: list[pydicom.Dataset],
    lesion_report: LesionReport,
) -> None:
    assert study_report.study_instance_uid == ge_series[0].StudyInstanceUID
    assert study_report.study_date == ge_series[0].StudyDate
    assert study_report.series["flair"] == SeriesUsed(
        series_instance_uid=ge_series[0].SeriesInstanceUID,
        series_description=ge_series[0].SeriesDescription,
        series_number=int(ge_series[0].SeriesNumber),
    )
    assert study_report.lesion_count == 2
    assert study_report.total_lesion_volume_ml == lesion_report.total_volume_ml
    assert study_report.brain_volume_ml == BRAIN_VOLUME_ML
    assert [entry.rank for entry in study_report.lesions] == [1, 2]
    largest = lesion_report.lesions[0]
    assert study_report.lesions[0].volume_ml == largest.volume_ml
    assert study_report.lesions[0].centroid_mm_lps == largest.centroid_mm
    assert study_report.seg_sop_instance_uid == outputs.seg.SOPInstanceUID
    assert study_report.sr_sop_instance_uid == outputs.sr.SOPInstanceUID
    assert study_report.disclaimer == RESEARCH_DISCLAIMER
    assert study_report.model_name == MODEL_NAME
    assert study_report.model_version == MODEL_VERSION
    assert study_report.created.tzinfo is not None


def test_round_trip(study_report: StudyReport, tmp_path: Path) -> None:
    path = write_json_report(study_report, tmp_path / "out" / "report.json")
    assert read_json_report(path) == study_report
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]  # no temp file left


def test_no_patient_identity(
    study_report: StudyReport, ge_series: list[pydicom.Dataset], tmp_path: Path
) -> None:
    text = write_json_report(study_report, tmp_path / "report.json").read_text()
    assert str(ge_series[0].PatientName) not in text
    assert "patient" not in text.lower()


def test_invalid_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"lesion_count": -1}')
    with pytest.raises(InputError, match="not a valid study report"):
        read_json_report(path)
    with pytest.raises(InputError, match="cannot read"):
        read_json_report(tmp_path / "missing.json")


def test_ras_centroids_are_refused(
    ge_series: list[pydicom.Dataset], lesion_report: LesionReport
) -> None:
    """NIfTI-style RAS centroids would swap left and right for the reader: refused."""
    lesions = [
        lesion.model_copy(
            update={
                "centroid_mm": (
                    -lesion.centroid_mm[0],
                    -lesion.centroid_mm[1],
                    lesion.centroid_mm[2],
                )
            }
        )
        for lesion in lesion_report.lesions
    ]
    ras = lesion_report.model_copy(update={"lesions": lesions})
    with pytest.raises(InputError, match="RAS"):
        build_study_report(
            ge_series,
            ras,
            BRAIN_VOLUME_ML,
            MODEL_NAME,
            MODEL_VERSION,
            series={"flair": series_used(ge_series[0])},
        )
