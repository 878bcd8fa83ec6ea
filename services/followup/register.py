"""Bring a prior study's FLAIR onto the current one: rigid, brain only, quality-checked.

Visits are hours to years apart, so scanner coordinates mean nothing between them: the start
aligns the two brain masks' centroids, then Mattes mutual information on the brain-masked
FLAIRs refines a rigid (6-parameter) transform over three resolutions. Rigid is the default
because a brain does not change shape between visits at this scale; atrophy and lesions
must stay visible as change, not be absorbed by scaling. The result is accepted only when
the two brain masks agree after alignment (:data:`MIN_BRAIN_DICE`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from mslesion.services.errors import InputError, RegistrationError
from mslesion.services.followup.model import RegistrationStatus, RegistrationSummary
from mslesion.services.imaging import registration
from mslesion.services.imaging.registration import Schedule

VISIT_RIGID = Schedule(
    spacing_mm=2.0, shrink=(4, 2, 1), sigma_mm=(4.0, 2.0, 0.0), sampling=0.1, iterations=100
)
MIN_BRAIN_DICE = 0.85  # two brain masks of one head, well aligned, agree far better
MAX_METRIC = -0.2  # FLAIR to FLAIR of one head: about -0.5 to -0.9 when aligned
MASK_MARGIN_MM = 4.0


@dataclass(frozen=True)
class Alignment:
    """Current-grid points → prior points, and how it was judged."""

    transform: sitk.AffineTransform
    summary: RegistrationSummary


def align_prior(
    current_flair: sitk.Image,
    current_brain: np.ndarray,
    prior_flair: sitk.Image,
    prior_brain: np.ndarray,
) -> Alignment:
    """Rigidly register the prior FLAIR onto the current FLAIR.

    Raises:
        RegistrationError: when the images do not overlap or the aligned brains disagree.
    """
    fixed_brain = _mask_image(current_brain, current_flair)
    moving_brain = _mask_image(prior_brain, prior_flair)
    fixed = _brain_working_copy(current_flair, fixed_brain)
    moving = _brain_working_copy(prior_flair, moving_brain)
    start = sitk.Euler3DTransform()
    fixed_centre = _centroid(fixed_brain)
    start.SetCenter(fixed_centre)
    start.SetTranslation(tuple(np.subtract(_centroid(moving_brain), fixed_centre).tolist()))
    mask = sitk.Resample(fixed_brain, fixed, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    mask = sitk.BinaryDilate(mask, [max(1, round(MASK_MARGIN_MM / VISIT_RIGID.spacing_mm))] * 3)
    try:
        result, metric = registration.register(
            fixed, moving, start, VISIT_RIGID, mask=mask, what="the prior FLAIR to the current"
        )
    except InputError as exc:
        raise RegistrationError(str(exc)) from exc
    transform = registration.as_affine(result)
    dice = _brain_dice(fixed_brain, moving_brain, transform)
    rotation, translation = _motion(transform, fixed_centre)
    summary = RegistrationSummary(
        status=RegistrationStatus.REGISTERED,
        method="rigid",
        reason="rigid, brain-masked mutual information: one head, no shape change between visits",
        metric=round(metric, 4),
        brain_overlap_dice=round(dice, 4),
        rotation_deg=round(rotation, 2),
        translation_mm=round(translation, 2),
    )
    if not np.isfinite(metric) or metric > MAX_METRIC or dice < MIN_BRAIN_DICE:
        raise RegistrationError(
            f"the prior FLAIR could not be aligned to the current one: brain overlap Dice "
            f"{dice:.2f} (needs ≥ {MIN_BRAIN_DICE}), mutual information {metric:.2f} (needs "
            f"≤ {MAX_METRIC}); is it the same patient, and does the prior cover the brain?"
        )
    return Alignment(transform, summary)


def resample_to_current(
    array: np.ndarray,
    prior_flair: sitk.Image,
    current_flair: sitk.Image,
    transform: sitk.Transform,
    interpolator: int = sitk.sitkLinear,
) -> np.ndarray:
    """A prior-grid array pulled onto the current grid (array order), 0 outside the prior."""
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(prior_flair)
    pixel = sitk.sitkFloat32 if interpolator != sitk.sitkNearestNeighbor else image.GetPixelID()
    out = sitk.Resample(image, current_flair, transform, interpolator, 0, pixel)
    return sitk.GetArrayFromImage(out)


def _mask_image(mask: np.ndarray, like: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.CopyInformation(like)
    return image


def _brain_working_copy(flair: sitk.Image, brain: sitk.Image) -> sitk.Image:
    """The FLAIR inside its brain (with a margin), on the isotropic working grid."""
    margin = sitk.BinaryDilate(brain, [2, 2, 1])
    masked = sitk.Mask(sitk.Cast(flair, sitk.sitkFloat32), margin)
    return registration.working_copy(masked, VISIT_RIGID.spacing_mm)


def _centroid(mask: sitk.Image) -> tuple[float, float, float]:
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(mask)
    if not stats.HasLabel(1):
        raise RegistrationError("a study has an empty brain mask: nothing to align")
    x, y, z = stats.GetCentroid(1)
    return (float(x), float(y), float(z))


def _brain_dice(fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform) -> float:
    pulled = sitk.Resample(moving, fixed, transform, sitk.sitkNearestNeighbor, 0)
    a = sitk.GetArrayViewFromImage(fixed).astype(bool)
    b = sitk.GetArrayViewFromImage(pulled).astype(bool)
    total = int(a.sum()) + int(b.sum())
    return 2.0 * float((a & b).sum()) / total if total else 0.0


def _motion(transform: sitk.Transform, centre: tuple[float, float, float]) -> tuple[float, float]:
    matrix = registration.affine_matrix(transform)
    cos = np.clip((np.trace(matrix[:3, :3]) - 1) / 2, -1.0, 1.0)
    shift = np.array(transform.TransformPoint(centre)) - np.array(centre)
    return float(np.degrees(np.arccos(cos))), float(np.linalg.norm(shift))
