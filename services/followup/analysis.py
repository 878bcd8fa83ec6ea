"""What a comparison hands to the output writers: the report and the maps on the current grid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from mslesion.services.followup.model import ChangeCategory, FollowUpReport

CATEGORY_VALUE: dict[ChangeCategory, int] = {
    ChangeCategory.NEW: 1,
    ChangeCategory.ENLARGING: 2,
    ChangeCategory.STABLE: 3,
    ChangeCategory.SHRINKING: 4,
}
"""Voxel value of each category in :attr:`FollowUpAnalysis.category_map` (0: no lesion now).

Disappeared lesions have no voxels now; they live in the report only.
"""


@dataclass
class FollowUpAnalysis:
    """One comparison, ready for the SEG, SR, secondary capture, JSON and montage writers.

    Every array is on the **current** FLAIR's native grid, in SimpleITK array order
    (frames, rows, columns), frame ``i`` lying on source frame ``i`` of the current FLAIR.
    """

    report: FollowUpReport
    current_flair: sitk.Image  # the current FLAIR, native grid
    prior_flair: sitk.Image  # the prior FLAIR resampled onto the current grid (registered)
    category_map: np.ndarray  # uint8, CATEGORY_VALUE per voxel of a current lesion, else 0
    prior_mask: np.ndarray  # uint8 0/1: the prior's lesions, resampled onto the current grid
    label_map: np.ndarray  # int32: current lesion rank (report ``current_label``) per voxel
