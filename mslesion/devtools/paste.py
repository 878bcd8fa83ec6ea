"""Synthetic follow-up: real lesions of other patients pasted into a copy of a scan.

The "current" visit is a copy of a scan with ``k`` known new lesions: whole lesions (shape and
signal in every modality given, e.g. FLAIR and T1) cut from donor scans on the same grid (the
open-ms cross-sectional scans all share the MNI grid), each modality scaled to the target's
brain intensity, moved to a free place inside ``room`` (e.g. the template's deep white matter)
and blended in with a soft edge. A follow-up reading of the original against the copy must
report exactly those ``k`` lesions as new.

A lesion is pasted into every modality at once: a lesion bright on FLAIR with the T1 of
normal white matter under it is not a lesion a multi-contrast model has ever seen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
# MS lesions are bright on FLAIR, T2 and PD, dark (or as dark) on T1: the blend never
# pushes a voxel the other way.
DARKER_IN = frozenset({"T1"})


@dataclass
class Pasted:
    """The copy with new lesions and where they are (same grid as the target)."""

    images: dict[str, sitk.Image]  # by modality, as given
    mask: np.ndarray  # uint8, array order: 1 on the pasted lesions
    count: int

    @property
    def flair(self) -> sitk.Image:
        """The pasted FLAIR."""
        return self.images["FLAIR"]


@dataclass
class _Donor:
    mask: np.ndarray  # cropped lesion mask
    signal: dict[str, np.ndarray]  # cropped images by modality, scaled to the target


def paste_lesions(
    targets: Mapping[str, sitk.Image],
    avoid: np.ndarray,
    room: np.ndarray,
    donors: Sequence[tuple[Mapping[str, sitk.Image], np.ndarray]],
    k: int,
    seed: int = 0,
) -> Pasted:
    """Paste ``k`` lesions of the ``donors`` into copies of ``targets``.

    ``targets``: images by modality (FLAIR required); ``donors``: (images by modality, lesion
    mask). All on one grid, masks in array order; every donor holds every modality of the targets.
    Lesions go wholly inside ``room`` and at least :data:`CLEARANCE_MM` from ``avoid`` (the
    target's lesions, or all a segmentation of it found) and from each other.

    Raises:
        ValueError: when the grids or modalities differ, or fewer than ``k`` lesions fit.
    """
    if "FLAIR" not in targets:
        raise ValueError("the targets need a FLAIR: lesions are found on it")
    arrays = {m: sitk.GetArrayFromImage(i).astype(np.float32) for m, i in targets.items()}
    shape = arrays["FLAIR"].shape
    if any(a.shape != shape for a in [*arrays.values(), avoid, room]):
        raise ValueError("target, avoid and room must share one grid")
    reference = targets["FLAIR"]
    spacing = np.array(reference.GetSpacing()[::-1])
    rng = np.random.default_rng(seed)
    pool = _donor_lesions(donors, arrays)
    rng.shuffle(pool)
    blocked = ndimage.distance_transform_edt(avoid == 0, sampling=spacing) <= CLEARANCE_MM
    mask = np.zeros(shape, dtype=np.uint8)
    signal = {m: np.zeros(shape, dtype=np.float32) for m in arrays}
    count = 0
    for donor in pool:
        placed = _place(donor, room, blocked, rng)
        if placed is None:
            continue
        mask[placed] = np.maximum(mask[placed], donor.mask)
        for modality, values in signal.items():
            values[placed] = np.where(donor.mask, donor.signal[modality], values[placed])
        lesion = np.zeros(shape, dtype=bool)
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
    images = {
        m: _blend(arrays[m], signal[m], mask, weight, darker=m in DARKER_IN, like=targets[m])
        for m in arrays
    }
    return Pasted(images, mask, count)


def _blend(
    target: np.ndarray,
    signal: np.ndarray,
    mask: np.ndarray,
    weight: np.ndarray,
    *,
    darker: bool,
    like: sitk.Image,
) -> sitk.Image:
    """The donor signal blended into one modality of the target with the soft ``weight``."""
    # Around the lesion edge the donor signal is continued outwards, so the blend is seamless.
    if darker:
        edge = ndimage.grey_erosion(np.where(signal > 0, signal, np.inf), size=(3, 3, 3))
        edge = np.where(np.isfinite(edge), edge, 0.0)
        source = np.where(mask > 0, signal, edge)
        toward = np.where(source > 0, np.minimum(source, target), target)
    else:
        edge = ndimage.grey_dilation(signal, size=(3, 3, 3))
        source = np.where(mask > 0, signal, edge)
        toward = np.maximum(source, target)
    blended = target * (1.0 - weight) + toward * weight
    image = sitk.GetImageFromArray(blended.astype(np.float32))
    image.CopyInformation(like)
    return image


def _donor_lesions(
    donors: Sequence[tuple[Mapping[str, sitk.Image], np.ndarray]],
    targets: Mapping[str, np.ndarray],
) -> list[_Donor]:
    """Every donor lesion of a usable size, cropped, each modality scaled to the target brain."""
    pool = []
    for images, donor_lesions in donors:
        if set(targets) - set(images):
            raise ValueError(f"a donor lacks {sorted(set(targets) - set(images))}")
        scaled = {}
        for modality, target in targets.items():
            d = sitk.GetArrayFromImage(images[modality]).astype(np.float32)
            if d.shape != target.shape or donor_lesions.shape != target.shape:
                raise ValueError("target, donors and masks must share one grid")
            scaled[modality] = d * float(np.median(target[target > 0]) / np.median(d[d > 0]))
        labels, _ = label_lesions(donor_lesions)
        for index, box in enumerate(ndimage.find_objects(labels), start=1):
            if box is None:
                continue
            lesion = labels[box] == index
            if MIN_VOXELS <= int(lesion.sum()) <= MAX_VOXELS:
                pool.append(_Donor(lesion, {m: a[box].copy() for m, a in scaled.items()}))
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
