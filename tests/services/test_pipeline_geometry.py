"""Every acquisition geometry through ``mslesion segment``: valid outputs, the same answer.

The studies are the geometry corpus (:mod:`mslesion.devtools.geometry_corpus`): one real
1 mm isotropic head (open-ms patient26, FLAIR + T1) re-sliced as sites acquire it, each
analysed by the ``mslesion segment`` command as a user runs it. The reference is the scan on
its own grid. Re-slicing moves no anatomy, so every version must find the same lesions.

Measured (issue 11; total lesion volume against the reference's 8.14 ml, and the largest
distance from a reference lesion of ≥ 0.1 ml to the nearest lesion found): sagittal_3d
+0.2 %, 0.7 mm; tilt_lr_20 +3.4 %, 0.7 mm; tilt_ap_12_flipped +1.2 %, 0.3 mm; sheared_20
+5.0 %, 0.7 mm; thick_tilt_16 +56 %, 11 mm (model 1.1.0). About 30 s per study on a
2-core machine, 4 minutes for the module.

The nets respond to how a scan is sampled, not only to where the anatomy is. With model 2.0.0
every re-slicing found a little less than the reference on its own grid: sagittal_3d -6.1 %,
tilt_lr_20 -6.3 %, tilt_ap_12_flipped -4.7 %, sheared_20 -5.9 %, centroids within 1.8-3.3 mm,
thick_tilt_16 -17.9 %. The cause: every served scan reaches the model grid by a cubic
B-spline interpolation whose low-pass depends on where its samples fall, and a re-slicing has
been interpolated once more before that; moving the reference's model-grid inputs by half a
voxel alone changed the nets' load by -3.5 to +1.6 %. The shipped FLAIR+T1 model 2.1.0 smooths its
inputs inside the brain (σ 0.5 voxel, in training and serving alike), which makes the input
the same whatever the sampling: sagittal_3d +0.2 %, tilt_lr_20 +0.9 %, tilt_ap_12_flipped
-2.7 %, sheared_20 -2.2 %, centroids within 0.41 mm; thick_tilt_16 -11.9 % (2026-12-07). Its
truth itself loses 7.9 % to the 3 mm slices. Issue 11's targets hold: 5 % and 2 mm for 1 mm
re-slicings (the sheared stack included), 15 % for the thick tilted one.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from mslesion.services.config import Provider, get_settings
from mslesion.services.errors import InputError
from mslesion.services.pipeline import segment_study
from mslesion.services.reporting.json_report import StudyReport, read_json_report
from mslesion.services.segmentation.catalogue import ModelSet
from tests.dicom_tools import dciodvfy_errors
from tests.geometry_corpus import LazyCorpus

pytestmark = pytest.mark.slow

RESLICED_1MM = ("sagittal_3d", "tilt_lr_20", "tilt_ap_12_flipped")
SHEARED = "sheared_20"
ANALYSED = ("reference", *RESLICED_1MM, SHEARED, "thick_tilt_16")
VOLUME_RTOL_1MM = 0.05
CENTROID_TOL_MM = 2.0
"""Issue 11's targets for a 1 mm re-slicing (5 %, 2 mm); see the module docstring."""
VOLUME_RTOL_THICK = 0.15
MATCHED_LESION_ML = 0.1
"""Reference lesions at least this large must be found again (smaller ones come and go with
the sampling: a 10-voxel lesion is one voxel from the size limit)."""
REFUSAL_LIMIT_S = 2.0


@dataclass(frozen=True)
class Analysed:
    """One corpus study after ``mslesion segment``: its folders and its JSON report."""

    study: Path
    out: Path
    report: StudyReport


def _segment_command(study: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """``mslesion segment STUDY --out OUT`` on the CPU, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "mslesion.cli", "segment", str(study), "--out", str(out),
         "--provider", "cpu"],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip


class Runs:
    """``mslesion segment`` on corpus cases, each run once per module when first needed."""

    def __init__(self, corpus: LazyCorpus, root: Path) -> None:
        self.corpus = corpus
        self.root = root
        self._done: dict[str, Analysed] = {}

    def get(self, name: str) -> Analysed:
        """The analysed case ``name``; fails the test with the command's output if it failed."""
        if name not in self._done:
            study = self.corpus.study(name).folder
            out = self.root / name
            result = _segment_command(study, out)
            assert result.returncode == 0, f"{name}: {result.stderr[-3000:]}"
            self._done[name] = Analysed(study, out, read_json_report(out / "report.json"))
        return self._done[name]


@pytest.fixture(scope="module")
def runs(geometry_corpus: LazyCorpus, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    return Runs(geometry_corpus, tmp_path_factory.mktemp("geometry-runs"))


def _flair_positions(study: Path) -> dict[str, np.ndarray]:
    """SOPInstanceUID -> ImagePositionPatient of every FLAIR instance of a corpus study."""
    return {
        str(ds.SOPInstanceUID): np.array([float(v) for v in ds.ImagePositionPatient])
        for ds in (pydicom.dcmread(p, stop_before_pixels=True) for p in study.glob("*FLAIR/*"))
    }


@pytest.mark.parametrize("name", ANALYSED)
def test_seg_and_sr_are_valid_and_lie_on_the_flair_frames(runs: Runs, name: str) -> None:
    analysed = runs.get(name)
    for output in ("lesions_seg.dcm", "lesions_sr.dcm"):
        assert dciodvfy_errors(analysed.out / output) == [], output
    seg = hd.seg.segread(analysed.out / "lesions_seg.dcm")
    sr = hd.sr.srread(analysed.out / "lesions_sr.dcm")
    assert sr.VerificationFlag == "UNVERIFIED"
    assert seg.StudyInstanceUID == sr.StudyInstanceUID == analysed.report.study_instance_uid
    flair = _flair_positions(analysed.study)
    referenced = {
        str(item.ReferencedSOPInstanceUID)
        for series in seg.ReferencedSeriesSequence
        for item in series.ReferencedInstanceSequence
    }
    assert referenced == set(flair)  # every FLAIR frame, whatever its orientation
    assert analysed.report.lesion_count > 0
    for frame in seg.PerFrameFunctionalGroupsSequence:  # each SEG frame lies on its source
        source = frame.DerivationImageSequence[0].SourceImageSequence[0]
        position = [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]
        np.testing.assert_allclose(position, flair[source.ReferencedSOPInstanceUID], atol=0.01)


def _agreement(reference: StudyReport, other: StudyReport) -> tuple[float, float]:
    """(relative total-volume difference; largest distance from a matched reference lesion
    to the nearest lesion of ``other``, mm)."""
    relative = other.total_lesion_volume_ml / reference.total_lesion_volume_ml - 1
    found = np.array([lesion.centroid_mm_lps for lesion in other.lesions])
    distances = [
        float(np.linalg.norm(found - np.array(lesion.centroid_mm_lps), axis=1).min())
        for lesion in reference.lesions
        if lesion.volume_ml >= MATCHED_LESION_ML
    ]
    assert distances, "the reference has no lesion large enough to match"
    return relative, max(distances)


@pytest.mark.parametrize("name", RESLICED_1MM)
def test_a_1mm_reslicing_finds_the_same_lesions(runs: Runs, name: str) -> None:
    relative, worst_mm = _agreement(runs.get("reference").report, runs.get(name).report)
    print(f"{name}: total volume {relative:+.1%}, centroids within {worst_mm:.2f} mm")
    assert abs(relative) <= VOLUME_RTOL_1MM
    assert worst_mm <= CENTROID_TOL_MM


def test_a_sheared_stack_is_analysed_like_any_other_grid(runs: Runs) -> None:
    relative, worst_mm = _agreement(runs.get("reference").report, runs.get(SHEARED).report)
    print(f"{SHEARED}: total volume {relative:+.1%}, centroids within {worst_mm:.2f} mm")
    assert abs(relative) <= VOLUME_RTOL_1MM
    assert worst_mm <= CENTROID_TOL_MM


def test_a_thick_tilted_version_keeps_the_lesion_load(runs: Runs) -> None:
    relative, worst_mm = _agreement(runs.get("reference").report, runs.get("thick_tilt_16").report)
    print(f"thick_tilt_16: total volume {relative:+.1%}, centroids within {worst_mm:.2f} mm")
    assert abs(relative) <= VOLUME_RTOL_THICK


@pytest.fixture(scope="module")
def models() -> ModelSet:
    return ModelSet.from_settings(get_settings().model_copy(update={"provider": Provider.CPU}))


def test_an_unsupported_geometry_fails_before_preprocessing(
    geometry_corpus: LazyCorpus, models: ModelSet, tmp_path: Path
) -> None:
    study = geometry_corpus.study("sheared_45")
    assert study.case.refusal is not None
    stages: list[str] = []
    out = tmp_path / "out"
    started = time.perf_counter()
    with pytest.raises(InputError, match=study.case.refusal) as caught:
        segment_study(study.folder, out, models, get_settings(), on_stage=stages.append)
    elapsed = time.perf_counter() - started
    assert stages == ["read", "select"]  # refused from headers: nothing decoded or computed
    assert elapsed <= REFUSAL_LIMIT_S, f"refusal took {elapsed:.2f} s"
    assert "lean 45.0°" in str(caught.value) and "'FLAIR TRA'" in str(caught.value)
    assert not out.exists()


def test_the_command_refuses_it_in_one_line_and_writes_nothing(
    geometry_corpus: LazyCorpus, tmp_path: Path
) -> None:
    study = geometry_corpus.study("sheared_45")
    result = _segment_command(study.folder, tmp_path / "out")
    assert result.returncode == 2, result.stderr
    _, found, message = result.stderr.partition("\nerror: ")  # after the progress bar
    assert found and message.startswith("no FLAIR series"), result.stderr
    assert "cannot be a FLAIR volume: sheared stack" in message
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
