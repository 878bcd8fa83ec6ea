"""The single-study analysis a later follow-up reading needs, kept beside the study's results.

``mslesion segment`` and every job write, under ``<results>/analysis/``, the native FLAIR, the
lesion probability map, the lesion labels by rank (label N is "lesion N" of the report and
the SR) and the brain mask, all on the FLAIR's own grid. A comparison then never segments a
study again: it reads two such folders. These files are internal (never forwarded to PACS).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from mslesion.services.errors import InputError
from mslesion.services.reporting.json_report import StudyReport, read_json_report

ANALYSIS_DIR = "analysis"
FLAIR_FILE = "flair.nii.gz"
PROBABILITY_FILE = "lesion_probability.nii.gz"
LABELS_FILE = "lesion_labels.nii.gz"
BRAIN_FILE = "brain_mask.nii.gz"
REPORT_FILE = "report.json"
_PROBABILITY_SCALE = 250  # uint8 steps of 0.004: far finer than any threshold used


@dataclass
class AnalysedStudy:
    """One analysed study as a comparison sees it; arrays in (frames, rows, columns) order."""

    report: StudyReport
    flair: sitk.Image  # native grid, float32
    probability: np.ndarray  # float32 in [0, 1]
    labels: np.ndarray  # int32, lesion rank per voxel, 0 background
    brain: np.ndarray  # bool

    def image_like(self, array: np.ndarray) -> sitk.Image:
        """``array`` (on this study's grid) as an image with the FLAIR's geometry."""
        image = sitk.GetImageFromArray(array)
        image.CopyInformation(self.flair)
        return image


def write_analysis(
    folder: Path,
    flair: sitk.Image,
    probability: np.ndarray,
    labels: np.ndarray,
    brain: np.ndarray,
) -> None:
    """Write the artefacts into ``folder/analysis`` (``folder`` is a staging results folder)."""
    target = folder / ANALYSIS_DIR
    target.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.Cast(flair, sitk.sitkFloat32), str(target / FLAIR_FILE), True)
    scaled = np.rint(np.clip(probability, 0.0, 1.0) * _PROBABILITY_SCALE).astype(np.uint8)
    for name, array in (
        (PROBABILITY_FILE, scaled),
        (LABELS_FILE, labels.astype(np.uint16)),
        (BRAIN_FILE, brain.astype(np.uint8)),
    ):
        image = sitk.GetImageFromArray(array)
        image.CopyInformation(flair)
        sitk.WriteImage(image, str(target / name), True)


def read_labels(result_dir: Path) -> np.ndarray:
    """The lesion labels by rank (int32) of a single-study results folder, nothing else."""
    path = result_dir / ANALYSIS_DIR / LABELS_FILE
    if not path.is_file():
        raise InputError(f"{result_dir}: no lesion labels; analyse the study again")
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path))).astype(np.int32)


def read_analysis(result_dir: Path) -> AnalysedStudy:
    """Read a single-study results folder written by the pipeline.

    Raises:
        InputError: when the folder is not an analysed study's results (or predates the
            follow-up artefacts: analyse the study again).
    """
    target = result_dir / ANALYSIS_DIR
    missing = [
        n
        for n in (FLAIR_FILE, PROBABILITY_FILE, LABELS_FILE, BRAIN_FILE)
        if not (target / n).is_file()
    ]
    if missing or not (result_dir / REPORT_FILE).is_file():
        raise InputError(
            f"{result_dir}: not an analysed study with follow-up artefacts (missing "
            f"{', '.join(missing) or REPORT_FILE}); analyse the study again with this version"
        )
    report = read_json_report(result_dir / REPORT_FILE)
    flair = sitk.ReadImage(str(target / FLAIR_FILE), sitk.sitkFloat32)
    arrays = [
        sitk.GetArrayFromImage(sitk.ReadImage(str(target / n)))
        for n in (PROBABILITY_FILE, LABELS_FILE, BRAIN_FILE)
    ]
    shape = sitk.GetArrayViewFromImage(flair).shape
    if any(a.shape != shape for a in arrays):
        raise InputError(f"{target}: analysis maps are not on the FLAIR's grid")
    probability = arrays[0].astype(np.float32) / _PROBABILITY_SCALE
    labels = arrays[1].astype(np.int32)
    if int(labels.max(initial=0)) != report.lesion_count:
        raise InputError(
            f"{target}: {int(labels.max(initial=0))} labelled lesions but the report has "
            f"{report.lesion_count}"
        )
    return AnalysedStudy(report, flair, probability, labels, arrays[2].astype(bool))
