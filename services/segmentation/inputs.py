"""Validation and standardisation of a multi-modal input stack (identical in training and serving).

Two standardisations, named in each model's manifest:

* ``zscore``: each image z-scored over the brain (models up to 1.1.0). Its scale depends on how
  much of the brain is grey matter, CSF or lesion, and on the grey/white contrast of the site.
* ``wm-peak``: each image divided by its normal-appearing white-matter peak, minus 1, so that
  normal white matter is 0 on every scanner and a lesion 40 % brighter than white matter is 0.4
  whatever the scanner's gain. The peak is the mode of the intensity histogram inside the
  registered template's white matter (probability ≥ :data:`NAWM_PRIOR_MIN`): lesions are a
  minority of those voxels in any MS brain, so they shift the mode far less than a mean.

Before either, a model may smooth every image inside the brain with a small Gaussian (σ in
model-grid voxels, manifest ``normalisation.smoothing_voxels``). Every served scan reaches the
model grid by one interpolation whose low-pass depends on where the acquisition's samples fall
on the grid: none for a scan already on it, the most half a voxel off. A fixed blur above that
makes the nets' input, and so the lesions they find, the same whatever the sampling. Measured
on one 1 mm scan re-sliced four ways (issue 11): with σ 0.5 the re-slicings' lesion load
agrees with the scan's own grid within 0.2-4.4 %, against 4.7-6.3 % without.

Context channels (``wm_prior``) give the nets, whose 11³ patch sees 1 cm, where in the brain a
voxel lies: the template's white-matter probability, 0 outside the brain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum

import numpy as np
from scipy import ndimage

from mslesion.services.errors import InputError

MIN_BRAIN_VOXELS = 1000
NAWM_PRIOR_MIN = 0.9  # template white-matter probability that makes a voxel surely white matter
MIN_NAWM_VOXELS = 2000  # fewer is not enough to find a histogram peak
_HIST_BINS = 256
_HIST_SMOOTH_BINS = 2.0


class Standardisation(StrEnum):
    """How each modality's intensities are made comparable across scanners."""

    ZSCORE = "zscore"
    WM_PEAK = "wm-peak"
    ROBUST = "robust"  # brain median and interquartile range: lesions barely move them


class ContextChannel(StrEnum):
    """Channels that are not images of the patient but where a voxel lies."""

    WM_PRIOR = "wm_prior"


def brain_mask(flair: np.ndarray) -> np.ndarray:
    """Brain voxels of a skull-stripped image: everything that is not exactly zero."""
    return np.asarray(flair != 0)


def zscore(image: np.ndarray, brain: np.ndarray, name: str) -> np.ndarray:
    """Z-score ``image`` over ``brain`` voxels; background stays exactly 0."""
    values = image[brain].astype(np.float64)
    std = float(values.std())
    if not std > 0:
        raise InputError(f"{name} is constant inside the brain: cannot normalise")
    out = np.zeros(image.shape, dtype=np.float32)
    out[brain] = ((values - values.mean()) / std).astype(np.float32)
    return out


def robust_scale(image: np.ndarray, brain: np.ndarray, name: str) -> np.ndarray:
    """``(image − brain median) / (IQR / 1.349)`` over ``brain``; background exactly 0.

    Used where two images of one head are compared (the change detector): a lesion load that
    differs between them barely moves the median and the quartiles, a mean and SD more.
    """
    values = image[brain].astype(np.float64)
    if values.size == 0:
        raise InputError(f"{name} has no brain voxels: cannot normalise")
    q25, median, q75 = np.percentile(values, [25, 50, 75])
    spread = float(q75 - q25) / 1.349
    if not spread > 0:
        raise InputError(f"{name} is constant inside the brain: cannot normalise")
    out = np.zeros(image.shape, dtype=np.float32)
    out[brain] = ((values - median) / spread).astype(np.float32)
    return out


def white_matter_peak(image: np.ndarray, region: np.ndarray, name: str) -> float:
    """Mode of ``image`` inside ``region``: the white-matter peak when the region is NAWM.

    The histogram spans the region's 0.5th to 99.5th percentiles and is smoothed before the
    peak is taken. :class:`InputError` when the region is too small or the image flat there.
    """
    values = image[region].astype(np.float64)
    if values.size < MIN_NAWM_VOXELS:
        raise InputError(
            f"{name}: only {values.size} voxels of sure white matter found "
            f"(at least {MIN_NAWM_VOXELS} needed to standardise intensities)"
        )
    low, high = np.percentile(values, [0.5, 99.5])
    if not high > low:
        raise InputError(f"{name} is constant inside the white matter: cannot standardise")
    counts, edges = np.histogram(values, bins=_HIST_BINS, range=(low, high))
    smooth = ndimage.gaussian_filter1d(counts.astype(np.float64), _HIST_SMOOTH_BINS)
    i = int(np.argmax(smooth))
    peak = float((edges[i] + edges[i + 1]) / 2)
    if not peak > 0:
        raise InputError(f"{name}: white-matter intensity peak is {peak:g}, not positive")
    return peak


def wm_peak_scale(
    image: np.ndarray, brain: np.ndarray, wm_prior: np.ndarray, name: str
) -> np.ndarray:
    """``image / peak - 1`` over ``brain`` (0 = normal white matter); background exactly 0."""
    region = brain & (wm_prior >= NAWM_PRIOR_MIN)
    peak = white_matter_peak(image, region, name)
    out = np.zeros(image.shape, dtype=np.float32)
    out[brain] = (image[brain].astype(np.float64) / peak - 1.0).astype(np.float32)
    return out


def smooth_in_brain(
    images: Mapping[str, np.ndarray], brain: np.ndarray, sigma: float
) -> dict[str, np.ndarray]:
    """Each image blurred by a Gaussian of ``sigma`` voxels inside ``brain``, 0 outside.

    Normalised convolution: only brain voxels contribute, so the dark background does not
    bleed into the brain's edge (the cortex and periventricular lesions stay as bright). The
    brain's own blur, the normaliser, is computed once for all images.
    """
    weight = np.maximum(ndimage.gaussian_filter(brain.astype(np.float32), sigma)[brain], 1e-6)
    out = {}
    for name, image in images.items():
        blurred = ndimage.gaussian_filter(np.where(brain, image, 0).astype(np.float32), sigma)
        out[name] = np.zeros(image.shape, dtype=np.float32)
        out[name][brain] = blurred[brain] / weight
    return out


def validate_images(images: Mapping[str, np.ndarray], modalities: list[str]) -> None:
    """Raise :class:`InputError` for missing/extra modalities, grid mismatch, NaN or empty brain."""
    given, wanted = list(images), [m.lower() for m in modalities]
    missing = [m for m in wanted if m not in given]
    extra = [m for m in given if m not in wanted]
    if missing or extra:
        raise InputError(
            f"the model takes {len(wanted)} channels ({', '.join(wanted)}) but got "
            f"{len(given)} ({', '.join(given) or 'none'})"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; unexpected: {', '.join(extra)}" if extra else "")
        )
    shapes = {name: images[name].shape for name in wanted}
    if any(len(s) != 3 for s in shapes.values()):
        raise InputError(f"every modality must be a 3D volume, got shapes {shapes}")
    if len(set(shapes.values())) != 1:
        raise InputError(f"modalities are on different grids: shapes {shapes}")
    for name in wanted:
        if not np.isfinite(images[name]).all():
            bad = int((~np.isfinite(images[name])).sum())
            raise InputError(f"{name} contains {bad} NaN or infinite voxels")
    n_brain = int(brain_mask(images[wanted[0]]).sum())
    if n_brain < MIN_BRAIN_VOXELS:
        raise InputError(
            f"{wanted[0]} has {n_brain} non-zero voxels: empty brain "
            f"(a skull-stripped image with at least {MIN_BRAIN_VOXELS} brain voxels is required)"
        )


def _check_prior(wm_prior: np.ndarray | None, shape: tuple[int, ...], why: str) -> np.ndarray:
    if wm_prior is None:
        raise InputError(f"{why} needs the registered white-matter prior (none was given)")
    prior = np.asarray(wm_prior, dtype=np.float32)
    if prior.shape != shape:
        raise InputError(f"the white-matter prior has shape {prior.shape}, the images {shape}")
    return prior


def prepare_stack(
    images: Mapping[str, np.ndarray],
    modalities: Sequence[str],
    *,
    standardisation: Standardisation = Standardisation.ZSCORE,
    wm_prior: np.ndarray | None = None,
    context: Sequence[ContextChannel] = (),
    smoothing: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Validate, then return the (C, X, Y, Z) float32 model input and the brain mask.

    ``images`` keys are modality names (case-insensitive); channel order follows
    ``modalities``, then ``context``. ``wm_prior`` (template white-matter probability on the
    images' grid) is required by ``wm-peak`` and by the ``wm_prior`` context channel.
    ``smoothing``: σ in voxels of the in-brain Gaussian applied first (0: none).
    """
    lowered = {k.lower(): v for k, v in images.items()}
    validate_images(lowered, list(modalities))
    order = [m.lower() for m in modalities]
    brain = brain_mask(lowered[order[0]])
    if smoothing > 0:
        lowered = smooth_in_brain({m: lowered[m] for m in order}, brain, smoothing)
    if standardisation is Standardisation.WM_PEAK:
        prior = _check_prior(wm_prior, brain.shape, "wm-peak standardisation")
        channels = [wm_peak_scale(lowered[m], brain, prior, m) for m in order]
    elif standardisation is Standardisation.ROBUST:
        channels = [robust_scale(lowered[m], brain, m) for m in order]
    else:
        channels = [zscore(lowered[m], brain, m) for m in order]
    for extra in context:
        prior = _check_prior(wm_prior, brain.shape, f"the {extra.value} channel")
        channels.append(np.where(brain, prior, 0).astype(np.float32))
    return np.stack(channels), brain


def candidate_mask(stack: np.ndarray, brain: np.ndarray, flair_z: float) -> np.ndarray:
    """Voxels net 1 scores: brain voxels whose normalised FLAIR (channel 0) exceeds ``flair_z``."""
    return np.asarray(brain & (stack[0] > flair_z))
