"""Anatomical white-matter prior: where on the model grid an MS white-matter lesion can be.

The shipped model was trained on 3D FLAIR; on clinical 2D FLAIR it also fires on bright
cortical grey matter, on the brain's edge and in the cerebellar cortex. The lesions it is meant
to find (and that its training truth marks) lie in white matter: periventricular,
juxtacortical, deep and infratentorial. :func:`white_matter_roi` turns the template's
white-matter probability (carried onto the subject by preprocessing,
:attr:`services.imaging.preprocess.Preprocessed.wm_prior`) into the region the cascade may
score; everything outside it is never a candidate.

The constants below were measured where the truth is known:

* open-ms cross-sectional training data (patients 07, 19, 26; expert lesion masks in MNI
  space, the WM map carried onto each FLAIR by the pipeline's own affine template
  registration): the setting keeps 0.981 / 1.000 / 1.000 of the lesion voxels and removes
  12 % of the brain;
* open-ms longitudinal clinical 2D studies (patients 01, 12, both studies; expert
  lesion-change masks, the ROI made by :func:`services.imaging.preprocess.preprocess` and
  mapped back to the native FLAIR): it keeps 0.979 to 0.990 of the change voxels.

It is the most restrictive setting measured that keeps at least 0.98 of the lesion voxels in
every patient of both sets (up to rounding). A tighter one that passes on the training data
alone (WM > 0.1, 2 mm: 0.986, 18 % of the brain removed) keeps only 0.93 of patient 01's
change voxels on the 2D studies: it cuts the outer parts of a temporal juxtacortical lesion and
of a lesion at the trigone of the lateral ventricle. ``tests/services/segmentation/
test_prior.py`` re-checks the training-data figures.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# White-matter probability above which a voxel is white matter (ICBM152 2009a map in [0, 1]).
WM_PRIOR_THRESHOLD = 0.3
# Growth of that white matter (mm; the model grid is 1 mm isotropic). The template is an
# average of healthy brains: its white matter stops short of where juxtacortical lesions touch
# the cortex and of where periventricular lesions border (often enlarged) ventricles, and the
# registration is off by a mm or two. The margin covers both.
WM_PRIOR_DILATE_MM = 4
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
