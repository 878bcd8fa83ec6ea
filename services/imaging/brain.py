"""Brain extraction of raw scans (skull on): template prior, then an intensity refinement.

1. **Prior**: the template's brain mask carried onto the target grid through the
   subject-to-template affine. On its own it reaches Dice ≈ 0.95 against expert masks
   (open-ms longitudinal), but its outline is the template's, not the subject's.
2. **Refinement** in a band of ±:data:`BAND_MM` around the prior's outline: keep the voxels
   whose bias-corrected FLAIR is brighter than the Otsu threshold between tissue and the dark
   CSF/bone around the brain, keep the largest connected piece, close the sulci and fill holes.
   Deep inside the prior everything is brain (dark ventricles included); outside the band
   nothing is (bright scalp fat never leaks in).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from mslesion.services.errors import InputError
from mslesion.services.imaging.units import voxel_volume_ml_from_spacing

PRIOR_THRESHOLD = 0.5  # on the linearly interpolated template mask
BAND_MM = 3  # half-width of the band where intensity decides; > the affine's typical error
CLOSING_MM = 3  # closes sulcal CSF, which clinical brain masks include
MIN_BRAIN_ML = 300.0  # below this the "brain" is a registration or input failure


def prior_mask(prior: sitk.Image, field_of_view: sitk.Image) -> sitk.Image:
    """Binary prior: interpolated template mask above :data:`PRIOR_THRESHOLD`, inside the FOV."""
    inside = sitk.Cast(prior > PRIOR_THRESHOLD, sitk.sitkUInt8)
    return sitk.And(inside, sitk.Cast(field_of_view, sitk.sitkUInt8))


def refine_brain_mask(
    flair: sitk.Image, prior: sitk.Image, field_of_view: sitk.Image
) -> sitk.Image:
    """Subject brain mask (uint8 0/1) on the grid of ``flair`` (bias-corrected).

    ``prior`` is the binary template prior and ``field_of_view`` marks the voxels the FLAIR
    actually covers (brain outside it cannot be seen, so it is not part of the mask).
    """
    prior = sitk.Cast(prior, sitk.sitkUInt8)
    box = _bounding_box(prior, margin_mm=BAND_MM + CLOSING_MM + 2.0)
    crop = [sitk.RegionOfInterest(image, box[1], box[0]) for image in (flair, prior, field_of_view)]
    brain = _refine(crop[0], crop[1], sitk.Cast(crop[2], sitk.sitkUInt8))
    _check_volume(brain)
    full = sitk.Image(prior.GetSize(), sitk.sitkUInt8)
    full.CopyInformation(prior)
    return sitk.Paste(full, brain, brain.GetSize(), [0, 0, 0], box[0])


def _refine(flair: sitk.Image, prior: sitk.Image, fov: sitk.Image) -> sitk.Image:
    # One signed distance map (negative inside) gives both edges of the band.
    distance = _distance_to(prior)
    outer = sitk.And(distance <= BAND_MM, fov)
    core = distance <= -BAND_MM
    tissue = flair > _tissue_threshold(flair, outer)
    brain = sitk.And(sitk.Or(core, sitk.And(outer, tissue)), fov)
    brain = _erode(_dilate(_largest_component(brain), CLOSING_MM), CLOSING_MM)  # closing
    brain = sitk.BinaryFillhole(brain, fullyConnected=False, foregroundValue=1)
    return sitk.And(brain, fov)  # closing may bulge past the FOV's edge


# Euclidean distance maps (linear time, threaded) stand in for dilation and erosion with a
# ball: several times faster than sitk.BinaryDilate/BinaryErode at these radii.
def _dilate(mask: sitk.Image, mm: float) -> sitk.Image:
    """Voxels within ``mm`` of the mask."""
    return sitk.Cast(_distance_to(mask) <= mm, sitk.sitkUInt8)


def _erode(mask: sitk.Image, mm: float) -> sitk.Image:
    """Mask voxels farther than ``mm`` from any voxel outside it."""
    return sitk.Cast(_distance_to(sitk.BinaryNot(mask)) > mm, sitk.sitkUInt8)


def _distance_to(mask: sitk.Image) -> sitk.Image:
    """Signed distance (mm) to ``mask``: positive outside, negative inside.

    Outside, the distance to the nearest mask voxel; inside, minus the distance to the mask's
    outermost voxels.
    """
    return sitk.SignedMaurerDistanceMap(
        mask, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
    )


def _bounding_box(mask: sitk.Image, margin_mm: float) -> tuple[list[int], list[int]]:
    """(start index, size) of the mask's bounding box grown by ``margin_mm``, within the image."""
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(mask)
    if not stats.HasLabel(1):
        raise InputError("brain extraction failed: the template brain misses the FLAIR entirely")
    box = np.array(stats.GetBoundingBox(1)).reshape(2, -1)  # (start, size)
    margin = np.ceil(margin_mm / np.array(mask.GetSpacing())).astype(int)
    start = np.maximum(box[0] - margin, 0)
    stop = np.minimum(box[0] + box[1] + margin, np.array(mask.GetSize()))
    return start.tolist(), (stop - start).tolist()


def _tissue_threshold(flair: sitk.Image, region: sitk.Image) -> float:
    """Otsu threshold of ``flair`` inside ``region``: dark CSF/bone vs brain tissue."""
    otsu = sitk.OtsuThresholdImageFilter()
    otsu.SetInsideValue(0)
    otsu.SetOutsideValue(1)
    otsu.SetNumberOfHistogramBins(128)
    otsu.SetMaskValue(1)
    otsu.Execute(flair, region)
    return float(otsu.GetThreshold())


def _largest_component(mask: sitk.Image) -> sitk.Image:
    labels = sitk.RelabelComponent(sitk.ConnectedComponent(mask), sortByObjectSize=True)
    return sitk.Cast(labels == 1, sitk.sitkUInt8)


def _check_volume(mask: sitk.Image) -> None:
    voxel_ml = voxel_volume_ml_from_spacing(mask.GetSpacing())
    volume = float(np.count_nonzero(sitk.GetArrayViewFromImage(mask))) * voxel_ml
    if volume < MIN_BRAIN_ML:
        raise InputError(
            f"brain extraction failed: {volume:.0f} ml of brain found "
            f"(at least {MIN_BRAIN_ML:.0f} ml expected); is the FLAIR a brain scan?"
        )
