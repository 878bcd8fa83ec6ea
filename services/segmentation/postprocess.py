"""From a probability map to lesions: threshold, minimum size, per-lesion volume and centroid."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel
from scipy import ndimage

from mslesion.services.imaging.units import voxel_volume_ml_from_affine
from mslesion.services.segmentation.lesions import label_lesions


class Lesion(BaseModel):
    """One lesion: a 26-connected component (:mod:`mslesion.services.segmentation.lesions`)."""

    label: int
    voxels: int
    volume_ml: float
    centroid_voxel: tuple[float, float, float]
    centroid_mm: tuple[float, float, float]
    max_probability: float


class LesionReport(BaseModel):
    """All lesions of one scan, largest first."""

    lesion_count: int
    total_volume_ml: float
    lesions: list[Lesion]


def binarise(prob: np.ndarray, t_bin: float, l_min: int) -> np.ndarray:
    """Threshold at ``t_bin`` and drop components smaller than ``l_min`` voxels (uint8 0/1)."""
    mask = prob > t_bin
    labels, n = label_lesions(mask)
    if n == 0:
        return mask.astype(np.uint8)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= l_min
    keep[0] = False
    return np.asarray(keep[labels], dtype=np.uint8)


def describe_lesions(
    mask: np.ndarray,
    prob: np.ndarray,
    affine: np.ndarray,
    labelled: tuple[np.ndarray, int] | None = None,
) -> LesionReport:
    """Per-lesion volume (ml), centroid (voxel and world mm) and peak probability.

    ``labelled`` is ``label_lesions(mask)`` when the caller has it already (each lesion's
    ``label`` is then its label there).

    Raises:
        InputError: when ``affine`` is not 4x4 or gives voxels without volume.
    """
    labels, n = labelled if labelled is not None else label_lesions(mask)
    voxel_ml = voxel_volume_ml_from_affine(affine)
    if n == 0:
        return LesionReport(lesion_count=0, total_volume_ml=0.0, lesions=[])
    index = np.arange(1, n + 1)
    sizes = ndimage.sum_labels(np.ones_like(labels), labels, index)
    centroids = np.asarray(ndimage.center_of_mass(np.ones_like(labels), labels, index))
    peaks = ndimage.maximum(prob, labels, index)
    world = (affine[:3, :3] @ centroids.T).T + affine[:3, 3]
    lesions = [
        Lesion(
            label=int(i),
            voxels=int(s),
            volume_ml=float(s) * voxel_ml,
            centroid_voxel=(float(c[0]), float(c[1]), float(c[2])),
            centroid_mm=(float(w[0]), float(w[1]), float(w[2])),
            max_probability=float(p),
        )
        for i, s, c, w, p in zip(index, sizes, centroids, world, peaks, strict=True)
    ]
    lesions.sort(key=lambda les: -les.voxels)
    return LesionReport(
        lesion_count=n, total_volume_ml=float(sizes.sum()) * voxel_ml, lesions=lesions
    )
