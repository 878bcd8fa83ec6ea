"""Synthetic follow-up: real lesions of other patients pasted into a copy of a scan.

The "current" visit is a copy of a scan with ``k`` known new lesions: whole lesions (shape and
FLAIR signal) cut from donor scans on the same grid (the open-ms cross-sectional scans all
share the MNI grid), scaled to the target's brain intensity, moved to a free place inside
``room`` (e.g. the template's deep white matter) and blended in with a soft edge. A follow-up
reading of the original against the copy must report exactly those ``k`` lesions as new.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from mslesion.services.segmentation.lesions import label_lesions

MIN_VOXELS, MAX_VOXELS = 300, 900  # 0.3-0.9 ml at 1 mm: clearly visible, not confluent
CLEARANCE_MM = 4.0  # from anything in ``avoid`` and from each other
EDGE_SIGMA_MM = 0.7
TRIES_PER_LESION = 500
MIN_IN_ROOM = 0.8  # lesions reach beyond pure white matter; most of each must be inside


@dataclass
class Pasted:
    """The copy with new lesions and where they are (same grid as the target)."""

    flair: sitk.Image
    mask: np.ndarray  # uint8, array order: 1 on the pasted lesions
    count: int


@dataclass
class _Donor:
    mask: np.ndarray  # cropped lesion mask
    signal: np.ndarray  # cropped FLAIR, scaled to the target


def paste_lesions(
    target: sitk.Image,
    avoid: np.ndarray,
    room: np.ndarray,
    donors: Sequence[tuple[sitk.Image, np.ndarray]],
    k: int,
    seed: int = 0,
) -> Pasted:
    """Paste ``k`` lesions of the ``donors`` (image, lesion mask) into a copy of ``target``.

    All on one grid, masks in array order. Lesions go wholly inside ``room`` and at least
    :data:`CLEARANCE_MM` from ``avoid`` (the target's lesions, or all a segmentation of it
    found) and from each other.

    Raises:
        ValueError: when the grids differ or fewer than ``k`` lesions fit.
    """
    t = sitk.GetArrayFromImage(target).astype(np.float32)
    if t.shape != avoid.shape or t.shape != room.shape:
        raise ValueError("target, avoid and room must share one grid")
    spacing = np.array(target.GetSpacing()[::-1])
    rng = np.random.default_rng(seed)
    pool = _donor_lesions(donors, t)
    rng.shuffle(pool)
    blocked = ndimage.distance_transform_edt(avoid == 0, sampling=spacing) <= CLEARANCE_MM
    mask = np.zeros(t.shape, dtype=np.uint8)
    signal = np.zeros(t.shape, dtype=np.float32)
    count = 0
    for donor in pool:
        placed = _place(donor, room, blocked, rng)
        if placed is None:
            continue
        mask[placed] = np.maximum(mask[placed], donor.mask)
        signal[placed] = np.where(donor.mask, donor.signal, signal[placed])
        lesion = np.zeros(t.shape, dtype=bool)
        lesion[placed] = donor.mask
        blocked |= ndimage.distance_transform_edt(~lesion, sampling=spacing) <= CLEARANCE_MM
        count += 1
        if count == k:
            break
    if count < k:
        raise ValueError(f"only {count} of {k} donor lesions fit into the target")
    weight = np.clip(
        ndimage.gaussian_filter(mask.astype(np.float32), EDGE_SIGMA_MM / spacing), 0, 1
    )
    weight = np.maximum(weight, mask)
    # Around the lesion edge the donor signal is continued outwards, so the blend is seamless.
    edge = ndimage.grey_dilation(signal, size=(3, 3, 3))
    source = np.where(mask > 0, signal, edge)
    blended = t * (1.0 - weight) + np.maximum(source, t) * weight
    image = sitk.GetImageFromArray(blended.astype(np.float32))
    image.CopyInformation(target)
    return Pasted(image, mask, count)


def _donor_lesions(
    donors: Sequence[tuple[sitk.Image, np.ndarray]], target: np.ndarray
) -> list[_Donor]:
    """Every donor lesion of a usable size, cropped, its signal scaled to the target brain."""
    pool = []
    for donor, donor_lesions in donors:
        d = sitk.GetArrayFromImage(donor).astype(np.float32)
        if d.shape != target.shape or donor_lesions.shape != target.shape:
            raise ValueError("target, donors and masks must share one grid")
        d *= float(np.median(target[target > 0]) / np.median(d[d > 0]))
        labels, _ = label_lesions(donor_lesions)
        for index, box in enumerate(ndimage.find_objects(labels), start=1):
            if box is None:
                continue
            lesion = labels[box] == index
            if MIN_VOXELS <= int(lesion.sum()) <= MAX_VOXELS:
                pool.append(_Donor(lesion, d[box].copy()))
    return pool


def _place(
    donor: _Donor, room: np.ndarray, blocked: np.ndarray, rng: np.random.Generator
) -> tuple[slice, slice, slice] | None:
    """A box where the lesion is clear of ``blocked`` and mostly in ``room``; else None."""
    free = room & ~blocked
    centres = np.argwhere(free)
    if centres.size == 0:
        return None
    half = np.array(donor.mask.shape) // 2
    for pick in rng.choice(len(centres), size=min(TRIES_PER_LESION, len(centres)), replace=False):
        low = centres[pick] - half
        high = low + np.array(donor.mask.shape)
        if (low < 0).any() or (high > np.array(free.shape)).any():
            continue
        box = (slice(low[0], high[0]), slice(low[1], high[1]), slice(low[2], high[2]))
        inside = room[box][donor.mask]
        if not blocked[box][donor.mask].any() and inside.mean() >= MIN_IN_ROOM:
            return box
    return None
