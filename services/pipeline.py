"""``mslesion segment``: a raw DICOM study in, DICOM SEG + TID 1500 SR + JSON + PNG out.

Stages: read → select series → assemble volumes → preprocess (register, N4, brain, model grid)
→ cascade (ONNX Runtime) → back to the native FLAIR grid → post-process → outputs. Outputs
are written to a staging folder beside OUT_DIR and renamed into place at the end, so a failed
run leaves nothing partial.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset

from mslesion.services.config import Settings
from mslesion.services.dicom.reader import SeriesVolume, Study, read_source_datasets, read_study
from mslesion.services.dicom.selection import Selection, select_series
from mslesion.services.dicom.zipguard import ZipLimits
from mslesion.services.errors import InputError
from mslesion.services.followup.artefacts import write_analysis
from mslesion.services.imaging.geometry import voxel_volume_ml
from mslesion.services.imaging.preprocess import preprocess
from mslesion.services.imaging.regions import lesion_locations, regions_on
from mslesion.services.imaging.units import voxel_volume_ml_from_spacing
from mslesion.services.reporting.identity import new_uid
from mslesion.services.reporting.json_report import (
    SeriesUsed,
    StudyReport,
    build_study_report,
    series_used,
    write_json_report,
)
from mslesion.services.reporting.montage import montage_title, render_montage
from mslesion.services.reporting.seg import build_seg, patient_affine
from mslesion.services.reporting.sr import build_sr, rank_lesions
from mslesion.services.segmentation.cascade import CascadeModel
from mslesion.services.segmentation.catalogue import ModelSet
from mslesion.services.segmentation.lesions import label_lesions
from mslesion.services.segmentation.postprocess import LesionReport, binarise, describe_lesions
from mslesion.services.segmentation.prior import (
    WM_PRIOR_DILATE_MM,
    WM_PRIOR_THRESHOLD,
    describe_prior,
    white_matter_roi,
)

log = logging.getLogger(__name__)

OUTPUT_NAMES = {
    "seg": "lesions_seg.dcm",
    "sr": "lesions_sr.dcm",
    "json": "report.json",
    "png": "montage.png",
    "log": "job.log",
}

StageCallback = Callable[[str], None]


@dataclass
class SegmentResult:
    """What one study produced and where it was written."""

    out_dir: Path
    files: dict[str, Path]
    report: StudyReport
    decisions: list[str]
    timings_s: dict[str, float] = field(default_factory=dict)
    provider: str = ""
    model_choice: str = ""
    flair: sitk.Image | None = field(default=None, repr=False)  # native FLAIR grid
    prob_native: np.ndarray | None = field(default=None, repr=False)  # (frames, rows, cols)


class _Timer:
    def __init__(self, on_stage: StageCallback | None) -> None:
        self.timings: dict[str, float] = {}
        self.on_stage = on_stage

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.on_stage:
            self.on_stage(name)
        t0 = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - t0, 3)


def _array(image: sitk.Image) -> np.ndarray:
    """(frames, rows, columns): SimpleITK's array order is (z, y, x) = slice, row, column."""
    return sitk.GetArrayFromImage(image)


def binarise_native(
    prob: np.ndarray, t_bin: float, l_min_ml: float, voxel_ml: float, l_min_voxels: int
) -> np.ndarray:
    """Threshold; keep components of at least ``l_min_ml`` and at least ``l_min_voxels`` voxels.

    The model's ``l_min`` (Valverde et al.: 10 voxels) counts twice: as a volume (10 model
    voxels, 0.01 ml), so that 0.5 mm voxels do not admit smaller lesions, and in voxels of the
    acquisition grid, so that a lesion must be seen in that many acquired samples. A 6-8 mm
    slice makes a voxel of ~5.5 mm³: 10 of them are 0.055 ml. Across sites (FLAIR+T1 recipe,
    leave-one-site-out, 2026-12-07) this lifted lesion F1 on the 2D clinical site from 0.330
    to 0.491 and left the 1 mm site unchanged (docs/results/cross_site_2026-12-07_flair_t1.json).
    """
    return binarise(prob, t_bin, reporting_floor(l_min_ml, voxel_ml, l_min_voxels))


def reporting_floor(l_min_ml: float, voxel_ml: float, l_min_voxels: int) -> int:
    """The fewest acquired voxels a reported lesion has (see :func:`binarise_native`).

    At least ``l_min_ml`` of volume and at least ``l_min_voxels`` voxels.
    """
    by_volume = math.ceil(l_min_ml / voxel_ml - 1e-9)
    return max(1, by_volume, l_min_voxels)


def _write_log(
    path: Path, decisions: list[str], timings: dict[str, float], extra: list[str]
) -> None:
    lines = ["series selection:", *(f"  {d}" for d in decisions), *extra, "timings (s):"]
    lines += [f"  {k}: {v:.2f}" for k, v in timings.items()]
    path.write_text("\n".join(lines) + "\n")


def segment_study(
    source: Path,
    out_dir: Path,
    models: CascadeModel | ModelSet,
    settings: Settings,
    on_stage: StageCallback | None = None,
) -> SegmentResult:
    """Run the whole pipeline on a study folder or zip and write the outputs to ``out_dir``.

    ``models`` is one model, or a catalogue from which the richest model whose modalities the
    study holds is chosen (the reason goes to the job log).
    Raises :class:`InputError` (or a subclass) with a readable message on bad input; nothing
    is left in ``out_dir`` then.
    """
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InputError(f"{out_dir}: output folder exists and is not empty")
    timer = _Timer(on_stage)
    with timer.stage("read"):
        study = read_study(source, zip_limits=ZipLimits.from_settings(settings))
    with timer.stage("select"):
        model, selection, choice = _select(study, models)
        manifest = model.manifest
        roles = [m.lower() for m in manifest.modalities]
        for line in selection.decisions:
            log.info("series selection: %s", line)
        log.info("model choice: %s", choice)
    with timer.stage("assemble"):
        volumes: dict[str, SeriesVolume] = {r: selection.load(r) for r in roles}
    flair = volumes["flair"]
    with timer.stage("preprocess"):
        pre = preprocess(
            flair.image,
            volumes["t1"].image if "t1" in volumes else None,
            volumes["t2"].image if "t2" in volumes else None,
        )
    for name, seconds in pre.timings_s.items():
        timer.timings[f"preprocess.{name}"] = round(seconds, 3)
    with timer.stage("cascade"):
        # The model fires on bright cortex and cerebellum of clinical 2D FLAIR: only white
        # matter (with a margin for juxtacortical and periventricular lesions) is scored.
        roi = white_matter_roi(pre.wm_prior, WM_PRIOR_THRESHOLD, WM_PRIOR_DILATE_MM)
        out = model.predict({r: pre.images[r] for r in roles}, restrict=roi, wm_prior=pre.wm_prior)
        prior_line = (
            f"candidate region: {describe_prior()} "
            f"({float((roi & pre.brain).sum()) / max(int(pre.brain.sum()), 1):.0%} of the brain)"
        )
        log.info("%s", prior_line)
    with timer.stage("postprocess"):
        prob_native = _array(pre.to_native(out.prob, "linear")).astype(np.float32)
        th = manifest.thresholds
        model_voxel_ml = voxel_volume_ml_from_spacing(manifest.spacing_mm)
        voxel_ml = voxel_volume_ml(flair.image)  # |det|: right for sheared grids too
        mask = binarise_native(prob_native, th.t_bin, th.l_min * model_voxel_ml, voxel_ml, th.l_min)
        brain_native = _array(pre.brain_native()).astype(bool)
        brain_ml = float(brain_native.sum()) * voxel_ml
    with timer.stage("outputs"):
        sources = read_source_datasets(flair)
        components, count = label_lesions(mask)
        report: LesionReport = describe_lesions(
            mask, prob_native, patient_affine(sources), (components, count)
        )
        ranks = rank_labels(components, report)
        regions = regions_on(flair.image, pre.transforms.template_to_flair)
        annotations = LesionAnnotations(
            tracking_uids=[str(new_uid(settings)) for _ in report.lesions],
            locations={k: str(v) for k, v in lesion_locations(ranks, regions).items()},
        )
        log_lines = [
            f"model: {manifest.name} {manifest.version} on {model.provider_used}",
            f"model choice: {choice}",
            prior_line,
        ]
        files, study_report = _write_outputs(
            out_dir,
            sources,
            mask,
            _array(flair.image),
            report,
            brain_ml,
            model,
            settings,
            {r: series_used(v.headers[0]) for r, v in volumes.items()},
            timer.timings,
            lambda path: _write_log(path, selection.decisions, timer.timings, log_lines),
            annotations,
            lambda folder: write_analysis(folder, flair.image, prob_native, ranks, brain_native),
        )
    return SegmentResult(
        out_dir,
        files,
        study_report,
        selection.decisions,
        timer.timings,
        model.provider_used,
        choice,
        flair.image,
        prob_native,
    )


@dataclass(frozen=True)
class LesionAnnotations:
    """Per-lesion facts beside the measurements: tracking UIDs (largest first), locations."""

    tracking_uids: list[str]
    locations: dict[int, str]  # rank -> McDonald location


def rank_labels(components: np.ndarray, report: LesionReport) -> np.ndarray:
    """Relabel components so that label N is "lesion N" (the N-th largest) of the report."""
    lookup = np.zeros(int(components.max(initial=0)) + 1, dtype=np.int32)
    for rank, lesion in enumerate(rank_lesions(report.lesions), start=1):
        lookup[lesion.label] = rank
    return lookup[components]


def _select(study: Study, models: CascadeModel | ModelSet) -> tuple[CascadeModel, Selection, str]:
    """The model for ``study``, its series selection and why that model (one line)."""
    if isinstance(models, CascadeModel):
        roles = tuple(m.lower() for m in models.manifest.modalities)
        m = models.manifest
        return (
            models,
            select_series(study, required=roles),
            f"configured model {m.name} {m.version}",
        )
    selection = select_series(study, required=("flair",))
    choice = models.choose(selection.series)
    return models.get(choice.folder), selection, choice.reason


def _write_outputs(
    out_dir: Path,
    sources: list[Dataset],
    mask: np.ndarray,
    flair: np.ndarray,
    report: LesionReport,
    brain_ml: float,
    model: CascadeModel,
    settings: Settings,
    series: dict[str, SeriesUsed],
    timings: dict[str, float],
    write_log: Callable[[Path], None],
    annotations: LesionAnnotations,
    write_artefacts: Callable[[Path], None],
) -> tuple[dict[str, Path], StudyReport]:
    """Build SEG, SR, JSON, PNG and the follow-up artefacts in staging, then move to ``out_dir``."""
    name, version = model.manifest.name, model.manifest.version
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        seg = build_seg(sources, mask, name, version, settings)
        sr = build_sr(
            sources,
            seg,
            report,
            brain_ml,
            name,
            version,
            settings,
            tracking_uids=annotations.tracking_uids,
        )
        files = {k: staging / v for k, v in OUTPUT_NAMES.items()}
        seg.save_as(files["seg"])
        sr.save_as(files["sr"])
        study_report = build_study_report(
            sources,
            report,
            brain_ml,
            name,
            version,
            series,
            timings,
            seg=seg,
            sr=sr,
            tracking_uids=annotations.tracking_uids,
            locations=annotations.locations,
        )
        write_json_report(study_report, files["json"])
        render_montage(
            flair,
            mask,
            files["png"],
            title=montage_title(name, version, report),
            affine=patient_affine(sources),
        )
        write_log(files["log"])
        write_artefacts(staging)
        staging.chmod(0o755)
        if out_dir.exists():
            out_dir.rmdir()  # empty, checked at the start
        staging.rename(out_dir)
        return {k: out_dir / v for k, v in OUTPUT_NAMES.items()}, study_report
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
