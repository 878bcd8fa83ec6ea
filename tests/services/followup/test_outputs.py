"""Writing a comparison's outputs: every file, the completed JSON, staging, validity."""

from __future__ import annotations

import json
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from PIL import Image

from mslesion.services.errors import InputError
from mslesion.services.followup.model import FollowUpReport
from mslesion.services.followup.outputs import FOLLOWUP_OUTPUT_NAMES, write_followup_outputs
from tests.dicom_tools import dciodvfy_errors, require_tool
from tests.services.reporting.followup_fixtures import FollowUpCase, make_case


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> FollowUpCase:
    return make_case(tmp_path_factory.mktemp("followup-outputs"))


@pytest.fixture(scope="module")
def written(
    case: FollowUpCase, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Path], FollowUpReport]:
    out_dir = tmp_path_factory.mktemp("results") / "comparison"
    before = case.analysis.report
    files = write_followup_outputs(
        out_dir,
        case.analysis,
        case.current_sources,
        case.settings,
        prior_sources=case.prior_sources,
        history=case.history,
    )
    return out_dir, files, before


def test_every_output_is_in_place(written: tuple[Path, dict[str, Path], FollowUpReport]) -> None:
    out_dir, files, _ = written
    assert set(files) == {"seg", "sr", "json", "png", "sc_1", "sc_2"}
    for key, name in FOLLOWUP_OUTPUT_NAMES.items():
        assert files[key] == out_dir / name
    assert files["sc_1"].name == "followup_sc_1.dcm"
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(p.name for p in files.values())
    assert [p.name for p in out_dir.parent.iterdir()] == [out_dir.name]  # no staging left
    with Image.open(files["png"]) as png:
        assert png.format == "PNG"
        png_pixels = np.asarray(png.convert("RGB"))
    np.testing.assert_array_equal(png_pixels, pydicom.dcmread(files["sc_1"]).pixel_array)


def test_json_names_the_written_objects(
    written: tuple[Path, dict[str, Path], FollowUpReport], case: FollowUpCase
) -> None:
    _, files, before = written
    report = FollowUpReport.model_validate_json(files["json"].read_text(encoding="utf-8"))
    seg, sr = pydicom.dcmread(files["seg"]), pydicom.dcmread(files["sr"])
    sc = pydicom.dcmread(files["sc_1"])
    assert report.seg_sop_instance_uid == seg.SOPInstanceUID
    assert report.sr_sop_instance_uid == sr.SOPInstanceUID
    assert report.sc_series_instance_uid == sc.SeriesInstanceUID
    assert report.lesions == before.lesions and report.counts == before.counts
    assert case.analysis.report == report  # the caller's analysis now carries the UIDs
    assert before.seg_sop_instance_uid is None  # ... and the original was not altered
    assert json.loads(files["json"].read_text(encoding="utf-8"))["schema_version"] == 1


def test_dicom_outputs_are_valid_and_readable(
    written: tuple[Path, dict[str, Path], FollowUpReport], case: FollowUpCase
) -> None:
    require_tool("dciodvfy")
    _, files, _ = written
    study = case.current_sources[0].StudyInstanceUID
    for key in ("seg", "sr", "sc_1", "sc_2"):
        assert dciodvfy_errors(files[key]) == [], key
        assert pydicom.dcmread(files[key]).StudyInstanceUID == study
    assert hd.seg.segread(files["seg"]).SeriesNumber == 9003
    sr = hd.sr.srread(files["sr"])
    assert sr.PertinentOtherEvidenceSequence[0].StudyInstanceUID == (
        case.analysis.report.prior_study_instance_uid
    )


def test_non_empty_folder_is_refused(case: FollowUpCase, tmp_path: Path) -> None:
    out_dir = tmp_path / "busy"
    out_dir.mkdir()
    (out_dir / "other.txt").write_text("keep me")
    with pytest.raises(InputError, match="not empty"):
        write_followup_outputs(out_dir, case.analysis, case.current_sources, case.settings)
    assert [p.name for p in out_dir.iterdir()] == ["other.txt"]


def test_failure_leaves_nothing_behind(case: FollowUpCase, tmp_path: Path) -> None:
    out_dir = tmp_path / "results" / "comparison"
    with pytest.raises(InputError):
        write_followup_outputs(
            out_dir, case.analysis, case.current_sources[:-1], case.settings
        )  # one source short: the SEG refuses the map
    assert not out_dir.exists()
    assert list(out_dir.parent.iterdir()) == []
