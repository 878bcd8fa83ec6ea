"""`mslesion segment` end to end on real anatomy: raw clinical scans wrapped as a DICOM study."""

from __future__ import annotations

import shutil
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from scipy import ndimage

from mslesion.devtools.dicom_writer import StudyInfo, write_study
from mslesion.services.config import Provider, get_settings
from mslesion.services.errors import InputError
from mslesion.services.followup.artefacts import read_analysis
from mslesion.services.pipeline import SegmentResult, segment_study
from mslesion.services.segmentation.cascade import CascadeModel
from mslesion.services.segmentation.catalogue import ModelSet
from tests.dicom_tools import dciodvfy_errors

STUDY = "longitudinal/patient01"


@pytest.fixture(scope="module")
def dicom_study(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = shared_data / "open-ms" / STUDY
    out = tmp_path_factory.mktemp("study")
    info = StudyInfo(patient_id="P01", patient_name="TEST^PATIENT", study_date="20120301")
    write_study(
        {
            "FLAIR": src / "study1_FLAIR.nii.gz",
            "T1W": src / "study1_T1W.nii.gz",
            "T2W": src / "study1_T2W.nii.gz",
        },
        out,
        info,
    )
    return out


@pytest.fixture(scope="module")
def models() -> ModelSet:
    settings = get_settings().model_copy(update={"provider": Provider.CPU})
    return ModelSet.from_settings(settings)


@pytest.fixture(scope="module")
def model(models: ModelSet) -> CascadeModel:
    return models.get(models.choose(["flair", "t1"]).folder)


@pytest.fixture(scope="module")
def result(
    dicom_study: Path, models: ModelSet, tmp_path_factory: pytest.TempPathFactory
) -> SegmentResult:
    out = tmp_path_factory.mktemp("out") / "result"
    return segment_study(dicom_study, out, models, get_settings())


def test_the_model_choice_and_its_reason_are_in_the_job_log(result: SegmentResult) -> None:
    log = (result.out_dir / "job.log").read_text()
    assert "model choice: study has FLAIR+T1+T2: model " in log
    assert result.model_choice.startswith("study has FLAIR+T1+T2")


def test_outputs_written(result: SegmentResult) -> None:
    assert {p.name for p in result.out_dir.iterdir()} == {
        "lesions_seg.dcm",
        "lesions_sr.dcm",
        "report.json",
        "montage.png",
        "job.log",
        "analysis",  # what a later follow-up reading needs (services/followup/artefacts.py)
    }
    assert result.report.lesion_count > 0
    assert 800 < result.report.brain_volume_ml < 2000
    # The study has FLAIR, T1 and T2; the series used are those of the model chosen for it.
    chosen = ModelSet.from_settings(get_settings()).choose(["flair", "t1", "t2"]).manifest
    assert set(result.report.series) == set(chosen.modalities)
    log = (result.out_dir / "job.log").read_text()
    assert "selected as FLAIR" in log and "TEST^PATIENT" not in log and "P01" not in log
    assert "candidate region: ICBM152 2009a white matter probability > " in log


def test_seg_and_sr_are_valid_dicom(result: SegmentResult) -> None:
    for name in ("lesions_seg.dcm", "lesions_sr.dcm"):
        errors = dciodvfy_errors(result.out_dir / name)
        assert not errors, errors
    seg = hd.seg.segread(result.out_dir / "lesions_seg.dcm")
    sr = hd.sr.srread(result.out_dir / "lesions_sr.dcm")
    assert seg.get_segment_description(1).segment_label == "MS lesion"
    assert sr.VerificationFlag == "UNVERIFIED"
    assert seg.StudyInstanceUID == sr.StudyInstanceUID == result.report.study_instance_uid


def test_seg_lies_on_the_largest_lesion(result: SegmentResult) -> None:
    """The SEG's largest lesion sits where the probability map's largest lesion is."""
    assert result.prob_native is not None and result.flair is not None
    ds = pydicom.dcmread(result.out_dir / "lesions_seg.dcm")
    frames = ds.pixel_array.reshape(-1, ds.Rows, ds.Columns)
    positions = np.array(
        [
            f.PlanePositionSequence[0].ImagePositionPatient
            for f in ds.PerFrameFunctionalGroupsSequence
        ],
        dtype=float,
    )
    orient = np.array(
        ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient,
        dtype=float,
    )
    spacing = np.array(
        ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing, dtype=float
    )
    # physical points of every SEG voxel of the largest component (3D over stacked frames)
    order = np.argsort(positions @ np.cross(orient[:3], orient[3:]))
    volume = frames[order]
    labels, _ = ndimage.label(volume, structure=np.ones((3, 3, 3)))
    largest = np.argmax(np.bincount(labels.ravel())[1:]) + 1
    f, r, c = np.nonzero(labels == largest)
    pts = (
        positions[order][f]
        + np.outer(c * spacing[1], orient[:3])
        + np.outer(r * spacing[0], orient[3:])
    )
    seg_centroid = pts.mean(axis=0)
    # centroid of the largest thresholded component of the probability map, FLAIR frame
    plabels, _ = ndimage.label(result.prob_native > 0.5, structure=np.ones((3, 3, 3)))
    biggest = np.argmax(np.bincount(plabels.ravel())[1:]) + 1
    zyx = np.argwhere(plabels == biggest).mean(axis=0)
    prob_centroid = np.array(
        result.flair.TransformContinuousIndexToPhysicalPoint(
            (float(zyx[2]), float(zyx[1]), float(zyx[0]))
        )
    )
    voxel_diag = float(np.linalg.norm(result.flair.GetSpacing()))
    assert np.linalg.norm(seg_centroid - prob_centroid) < voxel_diag


def test_no_flair_is_a_clear_error_and_writes_nothing(
    dicom_study: Path, model: CascadeModel, tmp_path: Path
) -> None:
    study = tmp_path / "study"
    shutil.copytree(dicom_study, study)
    shutil.rmtree(study / "S004_FLAIR")
    out = tmp_path / "out"
    with pytest.raises(InputError, match="no FLAIR series"):
        segment_study(study, out, model, get_settings())
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["study"]


def test_refuses_non_empty_output(dicom_study: Path, model: CascadeModel, tmp_path: Path) -> None:
    (tmp_path / "x").write_text("keep me")
    with pytest.raises(InputError, match="not empty"):
        segment_study(dicom_study, tmp_path, model, get_settings())
    assert (tmp_path / "x").read_text() == "keep me"


def test_the_analysis_kept_for_follow_up_matches_the_report(result: SegmentResult) -> None:
    """Label N of the kept map is "lesion N" of the report and SR, with the SR's tracking UID."""
    kept = read_analysis(result.out_dir)
    report = result.report
    assert int(kept.labels.max()) == report.lesion_count
    voxel_ml = report.lesions[0].volume_ml / report.lesions[0].voxels
    for entry in report.lesions[:5]:
        assert int((kept.labels == entry.rank).sum()) == entry.voxels
        assert entry.volume_ml == pytest.approx(entry.voxels * voxel_ml)
        assert entry.location is not None
    sr = hd.sr.srread(result.out_dir / "lesions_sr.dcm")
    groups = sr.content.get_volumetric_roi_measurement_groups()
    uids = {str(g.tracking_uid) for g in groups}
    assert {e.tracking_uid for e in report.lesions} <= uids
    assert kept.probability.shape == kept.labels.shape == kept.brain.shape


def test_the_same_study_gives_the_same_lesions_bit_for_bit(
    result: SegmentResult, dicom_study: Path, models: ModelSet, tmp_path: Path
) -> None:
    """Multi-threaded ITK once moved a probability by 0.34 between two runs of one study."""
    again = segment_study(dicom_study, tmp_path / "again", models, get_settings())
    first, second = read_analysis(result.out_dir), read_analysis(again.out_dir)
    assert np.array_equal(first.probability, second.probability)
    assert np.array_equal(first.labels, second.labels)
    assert again.report.total_lesion_volume_ml == result.report.total_lesion_volume_ml
