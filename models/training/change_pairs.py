"""Synthetic follow-up pairs for the change detector: one scan, two "visits", known change.

No annotated longitudinal training data ships with mslesion (open-ms/longitudinal is the
evaluation), so pairs are made from the annotated cross-sectional scans, as MSSEG-2 entries
did: the prior is the scan, the current visit is the scan with real lesion shapes from the
lesion bank pasted into its white matter (**new**) and some existing lesions grown by a rim
(**enlarging**). The label is exactly those voxels.

What must *not* read as change is simulated too, independently per visit:

* the residual of the rigid registration and the interpolation onto the current grid (each
  visit re-gridded by its own sub-degree rotation and sub-voxel shift, with the serving
  interpolator);
* 2D acquisitions with their slices at other positions (thick slices with independent phase);
* residual bias fields and independent noise;
* lesions present at the prior and gone now (pasted into the prior only, labelled 0), so the
  net learns the direction of change, not only "different".

Contrasts of the pasted lesions start faint (FLAIR 1.1 × white matter): the change lesions of
real follow-ups are often small and faint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from mslesion.models.training.acquisition import bias_field, thick_slices
from mslesion.models.training.lesion_bank import LesionBank, paste_lesions, white_matter_proxy
from mslesion.models.training.regrid import random_rigid, regrid
from mslesion.services.segmentation.lesions import label_lesions

NEW_CONTRAST = {"flair": (1.1, 1.8)}
MAX_REGISTRATION_DEG = 0.5  # over 90 mm from the centre: 0.8 mm, a good rigid fit's residual


@dataclass(frozen=True)
class PairOptions:
    """How one synthetic pair is made."""

    new_lesions: tuple[int, int] = (2, 8)  # inclusive range per pair
    enlarging: tuple[int, int] = (0, 3)
    vanishing: tuple[int, int] = (0, 3)  # pasted into the prior only (label 0)
    rim_voxels: tuple[int, int] = (1, 2)
    thick_prob: float = 0.5
    thickness: tuple[int, int] = (3, 5)
    bias_strength: float = 0.05
    noise: tuple[float, float] = (0.02, 0.06)  # SD range, of the brain median, per visit


@dataclass
class SyntheticPair:
    """Two visits on one grid, the current visit's brain and the change label."""

    prior: np.ndarray
    current: np.ndarray
    brain: np.ndarray
    change: np.ndarray  # bool: new or enlarging voxels (current visit's frame)
    n_new: int
    n_enlarging: int


def _grown_rims(
    flair: np.ndarray,
    lesions: np.ndarray,
    brain: np.ndarray,
    k: int,
    options: PairOptions,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``k`` existing lesions (≥ 10 voxels) grown by a rim as bright as their core."""
    labels, n = label_lesions(lesions)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    eligible = [i for i in range(1, n + 1) if sizes[i] >= 10]
    out, rims = flair.copy(), np.zeros(flair.shape, dtype=bool)
    local_mean = ndimage.gaussian_filter(flair, 1.5)
    for i in rng.permutation(eligible)[:k] if eligible else []:
        lesion = labels == i
        width = int(rng.integers(options.rim_voxels[0], options.rim_voxels[1] + 1))
        rim = ndimage.binary_dilation(lesion, iterations=width) & brain & ~lesions & ~rims
        if not rim.any():
            continue
        level = float(np.median(flair[lesion])) * float(rng.uniform(0.8, 1.0))
        out[rim] = flair[rim] * (level / np.maximum(local_mean[rim], 1e-6))
        rims |= rim
    return out, rims


def _visit(
    flair: np.ndarray,
    brain: np.ndarray,
    change: np.ndarray,
    options: PairOptions,
    thickness: int | None,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One visit's acquisition: re-gridded, maybe thick-sliced, biased and noisy."""
    transform = random_rigid(brain.shape, rng, MAX_REGISTRATION_DEG)
    moved = regrid({"flair": flair}, brain, change, None, transform)
    image, moved_brain = moved.images["flair"], moved.images["flair"] > 0
    if thickness:
        image = thick_slices(image, thickness, int(rng.integers(0, thickness)))
    image = image * bias_field(image.shape, rng, options.bias_strength)
    median = float(np.median(image[moved_brain])) if moved_brain.any() else 1.0
    sd = float(rng.uniform(*options.noise)) * median
    image = image + rng.normal(0.0, sd, image.shape).astype(np.float32)
    image = np.where(moved_brain, np.maximum(image, 1e-3), 0.0).astype(np.float32)
    return image, moved_brain, moved.mask


def synthesise_pair(
    flair: np.ndarray,
    lesions: np.ndarray,
    bank: LesionBank,
    rng: np.random.Generator,
    options: PairOptions = PairOptions(),
    wm: np.ndarray | None = None,
) -> SyntheticPair:
    """A prior/current pair from one skull-stripped FLAIR on the 1 mm model grid (LAS).

    ``lesions`` is the scan's annotated lesion mask: they exist at both visits (some grow).
    """
    brain = flair > 0
    lesions = lesions.astype(bool) & brain
    if wm is None:
        wm = white_matter_proxy({"flair": flair}, brain)
    n_gone = int(rng.integers(options.vanishing[0], options.vanishing[1] + 1))
    prior_images, gone = paste_lesions(
        {"flair": flair}, brain, lesions, bank, rng, n_gone, NEW_CONTRAST, wm=wm
    )
    prior = prior_images["flair"]
    grown, rims = _grown_rims(
        flair,
        lesions,
        brain,
        int(rng.integers(options.enlarging[0], options.enlarging[1] + 1)),
        options,
        rng,
    )
    n_new = int(rng.integers(options.new_lesions[0], options.new_lesions[1] + 1))
    taken = gone.astype(bool) | rims
    current_images, with_new = paste_lesions(
        {"flair": grown}, brain, taken, bank, rng, n_new, NEW_CONTRAST, wm=wm
    )
    change = (with_new.astype(bool) & ~taken) | rims
    thickness = None
    if rng.random() < options.thick_prob:
        thickness = int(rng.integers(options.thickness[0], options.thickness[1] + 1))
    prior_img, _, _ = _visit(prior, brain, np.zeros_like(change), options, thickness, rng)
    current_img, current_brain, moved_change = _visit(
        current_images["flair"], brain, change, options, thickness, rng
    )
    both = current_brain & (prior_img > 0)
    _, n_found = label_lesions(with_new.astype(bool) & ~taken)
    return SyntheticPair(
        prior=np.where(both, prior_img, 0.0).astype(np.float32),
        current=np.where(both, current_img, 0.0).astype(np.float32),
        brain=both,
        change=moved_change & both,
        n_new=n_found,
        n_enlarging=int(label_lesions(rims)[1]),
    )
