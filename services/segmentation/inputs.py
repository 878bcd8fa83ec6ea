"""Validation and normalisation of a multi-modal input stack (identical in training and serving)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mslesion.services.errors import InputError

MIN_BRAIN_VOXELS = 1000


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


def prepare_stack(
    images: Mapping[str, np.ndarray], modalities: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Validate, then return the normalised (C, X, Y, Z) float32 stack and the brain mask.

    ``images`` keys are modality names (case-insensitive); channel order follows ``modalities``.
    """
    lowered = {k.lower(): v for k, v in images.items()}
    validate_images(lowered, modalities)
    order = [m.lower() for m in modalities]
    brain = brain_mask(lowered[order[0]])
    stack = np.stack([zscore(lowered[m], brain, m) for m in order])
    return stack, brain


def candidate_mask(stack: np.ndarray, brain: np.ndarray, flair_z: float) -> np.ndarray:
    """Voxels net 1 scores: brain voxels whose normalised FLAIR (channel 0) exceeds ``flair_z``."""
    return np.asarray(brain & (stack[0] > flair_z))
