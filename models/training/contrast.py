"""Contrast augmentation: another scanner's tissue contrast on the same anatomy.

Sites differ in how much brighter grey matter, CSF and lesions are than white matter (field
strength, sequence, TI/TE). A per-modality power law on the intensity *ratio to the
white-matter peak* changes exactly that and nothing else: normal white matter stays where
standardisation puts it (ratio 1), every other tissue moves, in order. Noise at a random level
is added on top. Applied to the synthetic training copies, never to serving.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mslesion.services.segmentation.inputs import NAWM_PRIOR_MIN, white_matter_peak


def random_contrast(
    images: Mapping[str, np.ndarray],
    brain: np.ndarray,
    wm_prior: np.ndarray | None,
    rng: np.random.Generator,
    max_log_gamma: float,
    max_noise: float = 0.03,
) -> dict[str, np.ndarray]:
    """Each image as ``peak * (image / peak) ** gamma`` plus Gaussian noise, inside ``brain``.

    ``gamma = exp(u)``, ``u`` uniform in ±``max_log_gamma`` per modality; noise σ uniform in
    [0, ``max_noise``] × peak. The white-matter peak is found as standardisation finds it
    (inside the prior's sure white matter when ``wm_prior`` is given, else the whole brain).
    Background stays exactly 0 and brain voxels stay positive.
    """
    region = brain & (wm_prior >= NAWM_PRIOR_MIN) if wm_prior is not None else brain
    out = {}
    for name, image in images.items():
        peak = white_matter_peak(image, region, name)
        gamma = float(np.exp(rng.uniform(-max_log_gamma, max_log_gamma)))
        ratio = np.clip(image[brain].astype(np.float64) / peak, 0.0, None)
        values = peak * ratio**gamma + rng.normal(0.0, rng.uniform(0, max_noise) * peak, ratio.size)
        new = np.zeros(image.shape, dtype=np.float32)
        new[brain] = np.maximum(values, 1e-3 * peak).astype(np.float32)
        out[name] = new
    return out
