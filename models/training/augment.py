"""Patch-level augmentation on torch batches: flips (incl. 180° rotations) and intensity jitter."""

from __future__ import annotations

import torch


def augment_batch(
    x: torch.Tensor, generator: torch.Generator, intensity: float = 0.1
) -> torch.Tensor:
    """Random flips and, per patch and channel, a random gain and offset.

    Flips along each spatial axis (two flips = a 180° rotation); the gain and offset have
    relative size ``intensity`` (scanner contrast drift after standardisation).
    ``x`` is (N, C, 11, 11, 11).
    """
    n, c = x.shape[:2]
    out = x.clone()
    for axis in (2, 3, 4):
        flip = torch.rand(n, generator=generator) < 0.5
        if flip.any():
            out[flip] = out[flip].flip(axis)
    if intensity > 0:
        gain = 1 + intensity * torch.randn(n, c, 1, 1, 1, generator=generator)
        offset = intensity * torch.randn(n, c, 1, 1, 1, generator=generator)
        inside = out != 0  # background stays exactly zero, as in real skull-stripped input
        out = torch.where(inside, out * gain + offset, out)
    return out
