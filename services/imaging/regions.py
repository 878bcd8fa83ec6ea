"""McDonald lesion locations from the ICBM152 template: where in the brain a lesion lies.

The 2017 McDonald criteria count lesions by location: periventricular, juxtacortical or
cortical, infratentorial, and the rest (deep white matter). The template ships tissue
probabilities (grey and white matter), not labels, so the zones are built from them plus MNI
coordinates, then carried onto a study through the same template affine as the white-matter
prior. They are approximate on purpose and say so in every report:

* **infratentorial**: template brain below the tentorium, approximated by two MNI boxes
  (brainstem and cerebellum);
* **periventricular**: within :data:`PERIVENTRICULAR_MM` of the lateral and third ventricles
  (template CSF — neither grey nor white matter — inside a central box);
* **juxtacortical/cortical**: within :data:`JUXTACORTICAL_MM` of cortical grey matter (grey
  matter outside the deep-nuclei box);
* **deep white matter**: the rest of the brain.

A lesion gets the first location any of its voxels falls in, in that priority order
(infratentorial, periventricular, juxtacortical), as a radiologist counts a lesion touching
the ventricle as periventricular even if it reaches into deep white matter.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from mslesion.services.followup.model import Location
from mslesion.services.imaging import registration, template

PERIVENTRICULAR_MM = 3.0
JUXTACORTICAL_MM = 2.0
TISSUE_THRESHOLD = 0.3  # below this in both GM and WM probability: CSF
CORTEX_THRESHOLD = 0.5

REGION_VALUE: dict[Location, int] = {
    Location.INFRATENTORIAL: 1,
    Location.PERIVENTRICULAR: 2,
    Location.JUXTACORTICAL: 3,
    Location.DEEP_WHITE_MATTER: 4,
}
_BY_VALUE = {v: k for k, v in REGION_VALUE.items()}


def describe_regions() -> str:
    """One line for reports: how locations are assigned."""
    return (
        "McDonald locations from ICBM152 2009a tissue maps: infratentorial (MNI boxes), "
        f"periventricular (≤{PERIVENTRICULAR_MM:g} mm from ventricles), juxtacortical/cortical "
        f"(≤{JUXTACORTICAL_MM:g} mm from cortex), else deep white matter; approximate"
    )


def template_regions() -> sitk.Image:
    """The zones (uint8, :data:`REGION_VALUE`, 0 outside the brain) on the template's grid."""
    return sitk.Image(_template_regions())


def regions_on(reference: sitk.Image, template_to_image: sitk.Transform) -> np.ndarray:
    """The zones on ``reference``'s grid (array order), through the template→image affine.

    ``template_to_image`` maps template points to image points (the preprocessing's
    ``template_to_flair``); resampling needs the inverse, image points to template points.
    """
    resampled = sitk.Resample(
        _template_regions(),
        reference,
        registration.inverse(template_to_image),
        sitk.sitkNearestNeighbor,
        0,
        sitk.sitkUInt8,
    )
    return sitk.GetArrayFromImage(resampled)


def lesion_locations(labels: np.ndarray, regions: np.ndarray) -> dict[int, Location]:
    """Location of each labelled lesion (label → location); labels and regions share a grid."""
    found: dict[int, Location] = {}
    if labels.shape != regions.shape:
        raise ValueError(f"labels {labels.shape} and regions {regions.shape} differ in shape")
    index = np.unique(labels[labels > 0])
    if index.size == 0:
        return found
    # Outside the template brain counts as deep white matter (never wins over a zone).
    zone = np.where(regions == 0, REGION_VALUE[Location.DEEP_WHITE_MATTER], regions)
    first = ndimage.minimum(zone, labels, index)
    for label, value in zip(index.tolist(), np.atleast_1d(first).tolist(), strict=True):
        found[int(label)] = _BY_VALUE[int(value)]
    return found


@lru_cache(maxsize=1)
def _template_regions() -> sitk.Image:
    gm_image = template.template_gm_probability()
    gm = sitk.GetArrayFromImage(gm_image)
    wm = sitk.GetArrayFromImage(template.template_wm_probability())
    brain = sitk.GetArrayFromImage(template.template_brain_mask()).astype(bool)
    x, y, z = _mni_coordinates(gm_image)
    spacing = np.array(gm_image.GetSpacing()[::-1])

    infratentorial = brain & (_brainstem(x, y, z) | _cerebellum(x, y, z))
    csf = brain & (gm < TISSUE_THRESHOLD) & (wm < TISSUE_THRESHOLD)
    ventricles = _largest_parts(csf & _ventricle_box(x, y, z), min_voxels=200)
    cortex = brain & (gm >= CORTEX_THRESHOLD) & ~_deep_nuclei_box(x, y, z) & ~infratentorial

    zones = np.where(brain, REGION_VALUE[Location.DEEP_WHITE_MATTER], 0).astype(np.uint8)
    zones[_within(cortex, JUXTACORTICAL_MM, spacing) & brain] = REGION_VALUE[Location.JUXTACORTICAL]
    zones[_within(ventricles, PERIVENTRICULAR_MM, spacing) & brain] = REGION_VALUE[
        Location.PERIVENTRICULAR
    ]
    zones[infratentorial] = REGION_VALUE[Location.INFRATENTORIAL]
    image = sitk.GetImageFromArray(zones)
    image.CopyInformation(gm_image)
    return image


def _mni_coordinates(image: sitk.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MNI (RAS) millimetres of every voxel, as broadcastable (z, y, x) arrays."""
    size = image.GetSize()
    direction = np.array(image.GetDirection()).reshape(3, 3)
    origin = np.array(image.GetOrigin())
    spacing = np.array(image.GetSpacing())
    # The template's direction is diagonal (an axis-aligned grid): each axis maps to one.
    axes = [origin[a] + direction[a, a] * spacing[a] * np.arange(size[a]) for a in range(3)]
    lps_x = axes[0][np.newaxis, np.newaxis, :]
    lps_y = axes[1][np.newaxis, :, np.newaxis]
    lps_z = axes[2][:, np.newaxis, np.newaxis]
    return -lps_x, -lps_y, lps_z


def _brainstem(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    return (np.abs(x) < 16) & (y > -45) & (y < -10) & (z < -10)


def _cerebellum(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    # The tentorium rises towards the back: cerebellum under a plane from z=-20 at y=-40
    # to z=-8 at y=-80 (occipital cortex lies above it).
    return (y < -40) & (z < -20 + 0.3 * (-40 - y))


def _ventricle_box(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    return (np.abs(x) < 32) & (y > -50) & (y < 35) & (z > -8) & (z < 32)


def _deep_nuclei_box(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    # Basal ganglia and thalami, up to the caudate body along the ventricle's wall: grey
    # matter here is not cortex, so a lesion touching it is not juxtacortical.
    return (np.abs(x) < 30) & (y > -38) & (y < 28) & (z > -14) & (z < 27)


def _largest_parts(mask: np.ndarray, min_voxels: int) -> np.ndarray:
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_voxels
    keep[0] = False
    return np.asarray(keep[labels], dtype=bool)


def _within(mask: np.ndarray, mm: float, spacing: np.ndarray) -> np.ndarray:
    """Voxels within ``mm`` of ``mask`` (the mask included)."""
    if not mask.any():
        return mask
    distance = ndimage.distance_transform_edt(~mask, sampling=spacing)
    return np.asarray(distance <= mm)
