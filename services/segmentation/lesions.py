"""What one lesion is: the single definition used by serving, training and evaluation.

The rule: a lesion is a 26-connected component of the voxels whose mask value is ``> 0``
(NaN counts as background). Two lesion voxels belong to the same lesion when they share a
face, an edge or only a corner, i.e. their indices differ by at most 1 along every axis;
a gap of one background voxel separates two lesions. This is the lesion-wise convention of
the MS lesion segmentation literature (Valverde et al. 2017; the MICCAI 2016 MSSEG
challenge). Volumes in ml come from :mod:`mslesion.services.imaging.units`.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import ndimage

LESION_CONNECTIVITY: Final = ndimage.generate_binary_structure(3, 3)
"""The 3x3x3 all-true structuring element of 26-connectivity: every voxel touching the
centre one, by face, edge or corner, is its neighbour. Use it for any operation whose
"touching" must mean "the same lesion" (labelling, dilation by one neighbourhood)."""
LESION_CONNECTIVITY.flags.writeable = False


def label_lesions(mask: npt.ArrayLike) -> tuple[npt.NDArray[np.int32], int]:
    """Label the lesions of a 3-D mask.

    Voxels ``> 0`` are lesion (a boolean mask is used as it is); lesions are their
    26-connected components (:data:`LESION_CONNECTIVITY`).

    Returns:
        ``(labels, n)``: ``labels`` has the mask's shape, 0 on background and ``1..n`` on
        the ``n`` lesions.

    Raises:
        ValueError: when the mask is not 3-D.
    """
    array = np.asarray(mask)
    if array.ndim != 3:
        raise ValueError(f"a lesion mask must be 3-D, got shape {array.shape}")
    lesion = array if array.dtype == np.bool_ else array > 0
    labels = np.empty(lesion.shape, dtype=np.int32)
    n = ndimage.label(lesion, structure=LESION_CONNECTIVITY, output=labels)
    return labels, int(n)
