"""Series selection: plausible vendor names, preferences, site rules, explainable decisions."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from mslesion.devtools.dicom_writer import StudyInfo
from mslesion.services.config import get_settings
from mslesion.services.dicom.errors import DicomInputError, SeriesRulesError
from mslesion.services.dicom.reader import (
    MR_IMAGE_STORAGE,
    Series,
    Study,
    load_series_volume,
    read_study,
)
from mslesion.services.dicom.selection import (
    SHIPPED_RULES,
    SeriesRules,
    classify_series,
    load_rules,
    select_series,
)
from tests.dicom_patient import PATIENT_ID, PATIENT_NAME
from tests.services.dicom.synthetic import as_loaded, volume, write_series

EXPLICIT_LE = "1.2.840.10008.1.2.1"
_UIDS = itertools.count(1)


@pytest.fixture(scope="module")
def rules() -> SeriesRules:
    """The shipped rules."""
    return load_rules(SHIPPED_RULES)


def _series(description: str, **attributes: Any) -> Series:
    base: dict[str, Any] = {
        "modality": "MR",
        "sop_class_uid": MR_IMAGE_STORAGE,
        "sop_class_uids": (MR_IMAGE_STORAGE,),
        "n_instances": 30,
        "n_frames": 30,
        "image_type": ("ORIGINAL", "PRIMARY", "M", "ND"),
        "transfer_syntaxes": (EXPLICIT_LE,),
        "series_number": 1,
    }
    uid = f"1.2.3.{next(_UIDS)}"
    return Series(series_uid=uid, description=description, **{**base, **attributes})


FLAIR_2D = {"scanning_sequence": ("SE", "IR"), "echo_time": 120.0, "inversion_time": 2500.0}


@pytest.mark.parametrize(
    ("description", "attributes", "role"),
    [
        ("AX FLAIR", FLAIR_2D, "flair"),
        ("3D FLAIR", {"mr_acquisition_type": "3D", "echo_time": 390.0}, "flair"),
        ("T2_FLAIR_tra", FLAIR_2D, "flair"),
        ("Sag CUBE FLAIR", {}, "flair"),
        ("sT2W_FLAIR SENSE", {}, "flair"),
        ("t2_tirm_tra_dark-fluid", {}, "flair"),
        ("t1_mprage_sag", {"echo_time": 2.3, "inversion_time": 900.0}, "t1"),
        ("t1_mpr_sag_p2_iso", {}, "t1"),
        ("Accelerated SAG IR-SPGR", {"echo_time": 2.8, "inversion_time": 400.0}, "t1"),
        ("T1W_3D_TFE", {}, "t1"),
        ("sT1W_3D_TFE", {}, "t1"),
        ("SAG 3D BRAVO", {}, "t1"),
        ("AX T1 FLAIR", {"echo_time": 9.0, "inversion_time": 860.0}, "t1"),
        ("t2_tse_tra", {"echo_time": 100.0}, "t2"),
        ("T2W_TSE", {}, "t2"),
        ("PD/T2", {"echo_times": (12.0, 96.0), "echo_time": 12.0}, "t2"),
        ("Localizer", {}, None),
        ("3-Plane Loc", {}, None),
        ("AAHead_Scout_64ch-head-coil", {}, None),
        ("DWI", {}, None),
        ("ADC", {"image_type": ("DERIVED", "PRIMARY", "ADC")}, None),
        ("ep2d_diff_b1000", {"scanning_sequence": ("EP",)}, None),
        ("SWI", {}, None),
        ("T2*", {}, None),
        ("AX T2 FFE", {}, None),
        ("t1_mpr_sag_p2_iso_MPR_Tra", {}, None),
        ("ASSET calibration", {}, None),
        ("TOF 3D multi-slab", {}, None),
    ],
)
def test_vendor_names(
    rules: SeriesRules, description: str, attributes: dict[str, Any], role: str | None
) -> None:
    decision = classify_series(_series(description, **attributes), rules)
    assert decision.role == role, decision.reason


@pytest.mark.parametrize(
    ("description", "attributes", "reason"),
    [
        ("Localizer", {}, "localizer/scout"),
        ("DWI", {}, "diffusion"),
        ("SWI", {}, "susceptibility"),
        ("AX FLAIR", {"image_type": ("DERIVED", "SECONDARY", "MPR")}, "reformat/projection"),
        ("AX FLAIR", {"image_type": ("DERIVED", "PRIMARY", "OTHER")}, "derived or secondary"),
        ("AX FLAIR", {"modality": "CT"}, "modality CT is not MR"),
        ("AX FLAIR", {"sop_class_uid": "1.2.840.10008.5.1.4.1.1.66.4"}, "SOP class"),
        ("AX FLAIR", {"n_frames": 3}, "only 3 image(s), fewer than 10 slices"),
        ("AX FLAIR", {"echo_time": 20.0}, "echo time 20 ms is outside ≥ 60 ms for flair"),
        ("AX FLAIR", {"scanning_sequence": ("EP",)}, "echo-planar"),
        ("Some series", {}, "match no role (FLAIR/T1/T2)"),
        ("AX T2 FFE", {}, "but also '\\bffe\\b'"),
    ],
)
def test_rejections_say_why(
    rules: SeriesRules, description: str, attributes: dict[str, Any], reason: str
) -> None:
    decision = classify_series(_series(description, **attributes), rules)
    assert decision.role is None
    assert reason in decision.reason


def test_flair_recognised_by_parameters_alone(rules: SeriesRules) -> None:
    decision = classify_series(_series("AX 5", **FLAIR_2D), rules)
    assert decision.role == "flair" and "signature" in decision.reason
    assert classify_series(_series("AX 5", echo_time=100.0), rules).role is None


def _study(*series: Series) -> Study:
    return Study("1.2.3", "", "", list(series), [], Path("."))


def test_prefers_3d_then_thinner_slices_and_says_so() -> None:
    thick = _series("AX FLAIR", series_number=3, slice_thickness=4.0, **FLAIR_2D)
    thin = _series("AX FLAIR thin", series_number=4, slice_thickness=3.0, **FLAIR_2D)
    iso = _series("3D FLAIR", series_number=5, slice_thickness=1.0, mr_acquisition_type="3D")
    selection = select_series(_study(thick, thin, iso), required=("flair",))
    assert selection.series["flair"] is iso
    assert "selected as FLAIR" in selection.decisions[2]
    assert "series 5 preferred (3D acquisition)" in selection.decisions[0]
    selection = select_series(_study(thick, thin), required=("flair",))
    assert selection.series["flair"] is thin
    assert "series 4 preferred (thinner slices)" in selection.decisions[0]


def test_prefers_pre_contrast() -> None:
    post = _series("3D T1 +C", series_number=9, mr_acquisition_type="3D", slice_thickness=1.0)
    agent = _series("3D T1", series_number=8, mr_acquisition_type="3D", slice_thickness=1.0,
                    contrast_agent="GADOVIST")  # fmt: skip
    pre = _series("AX T1", series_number=3, slice_thickness=5.0)
    flair = _series("AX FLAIR", series_number=2)
    selection = select_series(_study(flair, pre, post, agent))
    assert selection.series["t1"] is pre
    assert "preferred (pre-contrast)" in selection.decisions[2]
    assert "preferred (pre-contrast)" in selection.decisions[3]


def test_study_wide_protocol_name_is_ignored() -> None:
    # GE writes the exam protocol in ProtocolName: it must not make every series a FLAIR.
    t1 = _series("SAG BRAVO", series_number=2, protocol_name="MS FLAIR PROTOCOL")
    dwi = _series("AX DWI", series_number=3, protocol_name="MS FLAIR PROTOCOL")
    flair = _series("AX 2D", series_number=4, protocol_name="MS FLAIR PROTOCOL", **FLAIR_2D)
    selection = select_series(_study(t1, dwi, flair))
    assert selection.series == {"t1": t1, "flair": flair}
    assert classify_series(t1, load_rules(SHIPPED_RULES)).role == "flair"  # alone, it would


def test_missing_t1_when_required(rules: SeriesRules) -> None:
    flair = _series("AX FLAIR", **FLAIR_2D)
    with pytest.raises(DicomInputError, match="no T1 series in the study"):
        select_series(_study(flair), rules=rules)
    assert select_series(_study(flair), required=("flair",), rules=rules).series == {"flair": flair}


def test_unknown_required_role(rules: SeriesRules) -> None:
    with pytest.raises(SeriesRulesError, match="no role pd"):
        select_series(_study(), required=("flair", "pd"), rules=rules)


def test_decisions_of_a_real_study_carry_no_patient_data(study_dir: Path) -> None:
    study = read_study(study_dir)
    selection = select_series(study)
    assert selection.series["flair"].description == "AX FLAIR"
    assert selection.series["t1"].description == "t1_mprage_sag"
    assert selection.rules_version == load_rules(SHIPPED_RULES).version
    assert len(selection.decisions) == 2
    text = "\n".join(selection.decisions)
    for secret in (PATIENT_NAME, PATIENT_ID, "Zzyzx", "Quentina", "19800101"):
        assert secret not in text
    assert study.patient_id == PATIENT_ID  # the study has it; the log lines do not


def test_no_flair_error_carries_no_patient_data(study_dir: Path) -> None:
    for path in (study_dir / "flair").iterdir():
        path.unlink()
    with pytest.raises(DicomInputError) as caught:
        select_series(read_study(study_dir))
    for secret in (PATIENT_NAME, PATIENT_ID):
        assert secret not in str(caught.value)


# --------------------------------------------------------------------------- site rules


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    """Settings re-read from the environment during the test, and restored after it."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_site_override_from_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    site = SHIPPED_RULES.read_text().replace('version: "1.0"', 'version: "site-7"')
    site = site.replace("names: ['flair', '\\bdark ?fluid']", "names: ['flair', '\\bwasser']")
    assert "wasser" in site
    path = tmp_path / "rules.yaml"
    path.write_text(site)
    series = _series("AX WASSER")
    assert classify_series(series, load_rules()).role is None  # shipped rules
    monkeypatch.setenv("MSLESION_SERIES_RULES", str(path))
    get_settings.cache_clear()
    selection = select_series(_study(series), required=("flair",))
    assert selection.series["flair"] is series
    assert selection.rules_version == "site-7"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("version: 1\naccept: {sop_class_uids: []}\nroles: {flair: {names: [x]}}\nextra: 1\n",
         "extra"),
        ("version: 1\naccept: {sop_class_uids: []}\nroles: {flair: {names: ['(']}}\n",
         "names"),
        ("version: 1\naccept: {sop_class_uids: []}\nroles: {flair: {namez: [x]}}\n", "namez"),
        ("- just\n- a list\n", "mapping"),
        ("version: [unclosed\n", "unreadable"),
    ],
)  # fmt: skip
def test_invalid_rules_file(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(SeriesRulesError, match=problem) as caught:
        load_rules(path)
    assert str(path) in str(caught.value)


def test_shipped_rules_have_a_version(rules: SeriesRules) -> None:
    assert rules.version == "1.0"
    assert list(rules.roles) == ["flair", "t1", "t2"]


# --------------------------------------------------------------------------- multi-echo


def _merge_into(first: list[Path], second: list[Path]) -> None:
    """Make ``second`` part of ``first``'s series, as a dual-echo scanner writes it."""
    reference = pydicom.dcmread(first[0])
    for i, path in enumerate(second):
        dataset = pydicom.dcmread(path)
        dataset.SeriesInstanceUID = reference.SeriesInstanceUID
        dataset.SeriesNumber = reference.SeriesNumber
        dataset.SeriesDescription = reference.SeriesDescription
        dataset.InstanceNumber = len(first) + i + 1
        dataset.EchoNumbers = 2
        dataset.save_as(path)


def test_dual_echo_pd_t2_takes_the_long_echo(flair_dir: Path, study_info: StudyInfo) -> None:
    protocol = {"ScanningSequence": ["SE"], "RepetitionTime": 3000.0, "EchoTrainLength": 8}
    pd = write_series(flair_dir / "pd", study_info, description="PD/T2", number=6,
                      protocol={**protocol, "EchoTime": 12.0}, data=volume(seed=6))  # fmt: skip
    t2 = write_series(flair_dir / "t2", study_info, description="PD/T2", number=7,
                      protocol={**protocol, "EchoTime": 96.0}, data=volume(seed=7))  # fmt: skip
    _merge_into(pd, t2)
    study = read_study(flair_dir)
    dual = next(s for s in study.series if s.description == "PD/T2")
    assert dual.echo_times == (12.0, 96.0) and dual.n_instances == 40
    with pytest.raises(DicomInputError, match=r"several echoes \(TE 12, 96 ms\)"):
        load_series_volume(dual)
    selection = select_series(study, required=("flair",))
    assert selection.series["t2"] is dual and selection.echo_times == {"t2": 96.0}
    assert "echo TE 96 ms" in next(d for d in selection.decisions if "PD/T2" in d)
    long_echo = sitk.GetArrayFromImage(selection.load("t2").image)
    short_echo = sitk.GetArrayFromImage(load_series_volume(dual, echo_time=12.0).image)
    np.testing.assert_array_equal(long_echo, as_loaded(volume(seed=7)))
    np.testing.assert_array_equal(short_echo, as_loaded(volume(seed=6)))
