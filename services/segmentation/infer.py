"""Segment co-registered, skull-stripped NIfTI images with a cascade model.

As in the DICOM pipeline, the registered template's white matter restricts where lesions are
looked for (:func:`white_matter_prior`): the FLAIR is registered to the template.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from mslesion.services.errors import InputError
from mslesion.services.imaging.nifti import Volume, check_same_grid, load_volume, save_like
from mslesion.services.imaging.preprocess import read_nifti_as_sitk, template_wm_prior_on
from mslesion.services.segmentation.cascade import CascadeModel, Method
from mslesion.services.segmentation.postprocess import LesionReport, binarise, describe_lesions
from mslesion.services.segmentation.prior import (
    WM_PRIOR_DILATE_MM,
    WM_PRIOR_THRESHOLD,
    white_matter_roi,
)

log = logging.getLogger(__name__)

SPACING_TOL_MM = 0.05


@dataclass
class Segmentation:
    """The outputs of one inference on the input's own grid."""

    reference: Volume
    prob: np.ndarray
    mask: np.ndarray
    report: LesionReport
    provider: str
    timings_s: dict[str, float] = field(default_factory=dict)
    restricted_to_white_matter: bool = False


def load_inputs(paths: dict[str, Path], model: CascadeModel) -> dict[str, Volume]:
    """Load one NIfTI per modality the model takes and check they share one grid and spacing."""
    wanted = [m.lower() for m in model.manifest.modalities]
    given = {k.lower(): v for k, v in paths.items() if v is not None}
    missing = [m for m in wanted if m not in given]
    extra = [m for m in given if m not in wanted]
    if missing or extra:
        raise InputError(
            f"model {model.manifest.name} takes {', '.join(wanted)}"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; not used by this model: {', '.join(extra)}" if extra else "")
        )
    volumes = {m: load_volume(given[m]) for m in wanted}
    check_same_grid(volumes)
    spacing = volumes[wanted[0]].spacing
    if not np.allclose(spacing, model.manifest.spacing_mm, atol=SPACING_TOL_MM):
        raise InputError(
            f"images have voxel spacing {tuple(round(s, 3) for s in spacing)} mm but the model "
            f"expects {model.manifest.spacing_mm} mm (resample first, or use `mslesion segment`)"
        )
    return volumes


def white_matter_prior(flair: Path, required: bool) -> np.ndarray | None:
    """The template white-matter probability on the FLAIR's grid, (x, y, z) like nibabel.

    When the FLAIR cannot be registered to the template: :class:`InputError` if the model
    ``required`` the prior, else ``None`` and a warning (no white-matter restriction then).
    """
    try:
        wm = template_wm_prior_on(read_nifti_as_sitk(flair))
    except InputError as exc:
        if required:
            raise InputError(f"the model needs the white-matter prior, but {exc}") from exc
        log.warning("no white-matter restriction for %s: %s", flair.name, exc)
        return None
    # SimpleITK's array is (z, y, x) of the same voxel grid nibabel reads as (x, y, z).
    return np.ascontiguousarray(sitk.GetArrayFromImage(wm).transpose(2, 1, 0))


def segment_volumes(
    volumes: dict[str, Volume],
    model: CascadeModel,
    method: Method = Method.DENSE,
    wm_prior: np.ndarray | None = None,
) -> Segmentation:
    """Run the cascade and post-processing; outputs stay on the first modality's grid.

    With ``wm_prior`` (1 mm grid, see :func:`white_matter_prior`) only the white-matter region
    is scored, as in the DICOM pipeline.
    """
    t0 = time.perf_counter()
    roi = (
        None
        if wm_prior is None
        else white_matter_roi(wm_prior, WM_PRIOR_THRESHOLD, WM_PRIOR_DILATE_MM)
    )
    out = model.predict(
        {k: v.data for k, v in volumes.items()}, method, restrict=roi, wm_prior=wm_prior
    )
    th = model.manifest.thresholds
    t1 = time.perf_counter()
    mask = binarise(out.prob, th.t_bin, th.l_min)
    reference = volumes[model.manifest.modalities[0].lower()]
    report = describe_lesions(mask, out.prob, reference.affine)
    timings = {**out.timings_s, "postprocess_s": time.perf_counter() - t1}
    timings["total_s"] = time.perf_counter() - t0
    return Segmentation(
        reference, out.prob, mask, report, model.provider_used, timings, roi is not None
    )


def write_segmentation(seg: Segmentation, mask_path: Path, prob_path: Path | None) -> None:
    """Write the binary mask (uint8) and optionally the probability map (float32)."""
    save_like(seg.reference, seg.mask, mask_path, np.uint8)
    if prob_path is not None:
        save_like(seg.reference, seg.prob, prob_path, np.float32)
