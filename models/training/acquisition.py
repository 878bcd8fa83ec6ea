"""Acquisition augmentation: make a 1 mm 3D training scan look like a 2D clinical one.

Hospitals mostly send 2D FLAIR with 3–5 mm slices, resampled to 1 mm by preprocessing, and
bias fields that N4 only partly removes. The training scans are 3D 1 mm and bias-corrected.
Applied to the synthetic training copies, these transforms teach the nets the blur across
slices and the residual shading they will meet in serving; the lesion mask stays the 1 mm truth.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage

SLICE_AXIS = 2  # inferior-superior in the training grid (LAS): axial 2D stacks blur along it


def thick_slices(
    image: np.ndarray, thickness: int, phase: int, axis: int = SLICE_AXIS
) -> np.ndarray:
    """Average ``thickness`` consecutive planes into one slice, then interpolate back to 1 mm."""
    moved = np.moveaxis(image, axis, 0).astype(np.float32)
    n = moved.shape[0]
    starts = np.arange(-phase, n, thickness)
    slabs = np.stack(
        [moved[max(s, 0) : max(s + thickness, 0)].mean(axis=0) for s in starts if s + thickness > 0]
    )
    centres = np.array(
        [(max(s, 0) + min(s + thickness, n) - 1) / 2 for s in starts if s + thickness > 0]
    )
    coords = np.interp(np.arange(n), centres, np.arange(len(centres)))
    grid = np.meshgrid(coords, *[np.arange(k) for k in moved.shape[1:]], indexing="ij")
    out = ndimage.map_coordinates(slabs, grid, order=1, mode="nearest")
    return np.moveaxis(out.astype(np.float32), 0, axis)


def bias_field(shape: tuple[int, ...], rng: np.random.Generator, strength: float) -> np.ndarray:
    """A smooth multiplicative field (second-order polynomial), within 1 ± ``strength``."""
    axes = [np.linspace(-1, 1, k, dtype=np.float32) for k in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
    terms = [x, y, z, x * y, x * z, y * z, x * x, y * y, z * z]
    field = sum(c * t for c, t in zip(rng.normal(size=len(terms)), terms, strict=True))
    field = np.asarray(field, dtype=np.float32)
    field /= max(float(np.abs(field).max()), 1e-6)
    return (1 + strength * field).astype(np.float32)


def simulate_clinical(
    images: Mapping[str, np.ndarray],
    brain: np.ndarray,
    rng: np.random.Generator,
    thick_prob: float = 0.7,
    thickness: tuple[int, int] = (3, 5),
    bias_strength: float = 0.15,
) -> dict[str, np.ndarray]:
    """Per modality: thick slices with probability ``thick_prob`` and a random bias field.

    Voxels outside ``brain`` stay exactly 0, as in skull-stripped input.
    """
    out = {}
    for name, image in images.items():
        img = image.astype(np.float32)
        if rng.random() < thick_prob:
            t = int(rng.integers(thickness[0], thickness[1] + 1))
            img = thick_slices(img, t, int(rng.integers(0, t)))
        img = img * bias_field(img.shape, rng, bias_strength)
        out[name] = np.where(brain, np.maximum(img, 1e-3), 0).astype(np.float32)
    return out
