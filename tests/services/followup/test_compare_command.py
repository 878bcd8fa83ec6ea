"""``mslesion compare`` as a user runs it: two DICOM studies of one patient in, change out."""

from __future__ import annotations

import json
from pathlib import Path

import highdicom as hd
import pytest

from mslesion.devtools.dicom_writer import StudyInfo, write_study
from tests.dicom_tools import dciodvfy_errors
from tests.test_cli import mslesion

pytestmark = pytest.mark.slow


def test_a_follow_up_without_t1_is_compared_with_the_model_both_visits_support(
    shared_data: Path, tmp_path: Path
) -> None:
    visits = shared_data / "open-ms" / "longitudinal" / "patient01"
    write_study(
        {r: visits / f"study1_{r}.nii.gz" for r in ("FLAIR", "T1W", "T2W")},
        tmp_path / "prior",
        StudyInfo(patient_id="P01", study_date="20100301"),
    )
    write_study(  # the follow-up protocol has no T1
        {"FLAIR": visits / "study2_FLAIR.nii.gz"},
        tmp_path / "current",
        StudyInfo(patient_id="P01", study_date="20110301"),
    )
    res = mslesion("compare", tmp_path / "prior", tmp_path / "current", "--out", tmp_path / "out")
    assert res.returncode == 0, res.stderr
    assert "both studies analysed by ms-cascade-flair " in res.stdout
    assert "MRI activity: yes" in res.stdout  # patient01 has new lesions at visit 2
    assert "change detector: ms-change-flair " in res.stdout

    folder = tmp_path / "out" / "followup"
    report = json.loads((folder / "followup.json").read_text())
    assert report["notes"] == []  # one model for both visits: nothing to caveat
    assert report["prior_model"].startswith("ms-cascade-flair ")
    assert report["registration"]["status"] == "registered"
    assert report["change_detector"].startswith("ms-change-flair ")  # the shipped detector read
    assert "change_detector" in report["timings_s"]
    assert all(
        lesion["change_ml"] is not None for lesion in report["lesions"] if lesion["current_label"]
    )
    prior_uids = {
        lesion["tracking_uid"]
        for lesion in json.loads((tmp_path / "out" / "prior" / "report.json").read_text())[
            "lesions"
        ]
    }
    assert any(lesion["tracking_uid"] in prior_uids for lesion in report["lesions"])
    for name in ("followup_seg.dcm", "followup_sr.dcm", "followup_sc_1.dcm", "followup_sc_2.dcm"):
        assert dciodvfy_errors(folder / name) == [], name
    seg = hd.seg.segread(folder / "followup_seg.dcm")
    assert seg.number_of_segments == 4
