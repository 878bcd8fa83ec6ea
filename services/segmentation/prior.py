"""Anatomical white-matter prior: where on the model grid an MS white-matter lesion can be.

The shipped model was trained on 3D FLAIR; on clinical 2D FLAIR it also fires on bright
cortical grey matter, on the brain's edge and in the cerebellar cortex. The lesions it is meant
to find (and that its training truth marks) lie in white matter: periventricular,
juxtacortical, deep and infratentorial. :func:`white_matter_roi` turns the template's
white-matter probability (carried onto the subject by preprocessing,
:attr:`services.imaging.preprocess.Preprocessed.wm_prior`) into the region the cascade may
score; everything outside it is never a candidate.

The constants below were chosen on the open-ms cross-sectional training data (patients 07, 19,
26: expert lesion masks in MNI space, the WM map carried onto each FLAIR by the pipeline's own
affine template registration): the most restrictive setting that still keeps at least 98 % of
every patient's lesion voxels. See ``tests/services/segmentation/test_prior.py``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# White-matter probability above which a voxel is white matter (ICBM152 2009a map in [0, 1]).
WM_PRIOR_THRESHOLD = 0.3
# Growth of that white matter (mm; the model grid is 1 mm isotropic). Lesions lower the WM
# probability that registration sees around them only in the subject, not in the template, but
# the template's white matter is thinner than a lesion-laden one at the cortex (juxtacortical
# lesions) and ends at the ventricles where periventricular lesions begin: a few mm of margin
# keeps both.
WM_PRIOR_DILATE_MM = 3
WM_PRIOR_NAME = "ICBM152 2009a white matter"


def describe_prior(
    threshold: float = WM_PRIOR_THRESHOLD, dilate_mm: int = WM_PRIOR_DILATE_MM
) -> str:
    """One line naming the prior and its setting, for job logs."""
    return f"{WM_PRIOR_NAME} probability > {threshold:g}, dilated {dilate_mm} mm, holes filled"


def white_matter_roi(wm_prior: np.ndarray, threshold: float, dilate_mm: int) -> np.ndarray:
    """Bool mask of the voxels where a white-matter lesion may lie.

    ``wm_prior`` is a white-matter probability map on a 1 mm isotropic grid (the model grid).
    The mask is ``wm_prior > threshold``, grown by ``dilate_mm`` (Euclidean ball, so the margin
    is the same in every direction), with enclosed holes filled: the ventricles and any deep
    pocket surrounded by white matter are inside, so periventricular lesions bordering them
    are never cut. An empty ``wm_prior`` (nothing above ``threshold``) gives an empty mask.

    Raises :class:`ValueError` for a non-3D map, a threshold outside [0, 1) or a negative
    dilation.
    """
    prior = np.asarray(wm_prior)
    if prior.ndim != 3:
        raise ValueError(f"wm_prior must be a 3D array, got shape {prior.shape}")
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}")
    if dilate_mm < 0:
        raise ValueError(f"dilate_mm must be >= 0, got {dilate_mm}")
    core = prior > threshold
    roi = np.zeros(prior.shape, dtype=bool)
    if not core.any():
        return roi
    # Work in the core's bounding box grown by the dilation (the grown mask cannot leave it):
    # about half the model grid. One voxel of background padding around the box connects
    # every outside voxel, so hole filling gives what it would on the whole array.
    nonzero = np.nonzero(core)
    lo = [max(int(axis.min()) - dilate_mm, 0) for axis in nonzero]
    hi = [
        min(int(axis.max()) + dilate_mm + 1, n)
        for axis, n in zip(nonzero, prior.shape, strict=True)
    ]
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    padded = np.pad(core[box], 1)
    grown = padded
    if dilate_mm > 0:
        # Distance to the nearest core voxel: a ball-shaped dilation in one linear-time pass
        # (binary_dilation with a radius-r ball is several times slower at these radii).
        grown = ndimage.distance_transform_edt(~padded) <= dilate_mm
    filled = ndimage.binary_fill_holes(grown)
    roi[box] = filled[1:-1, 1:-1, 1:-1]
    return roi
