"""Builds small model folders with random weights for tests (needs the [train] extra)."""

from __future__ import annotations

from pathlib import Path

import torch

from mslesion.models.network import CascadeNet
from mslesion.models.package import export_model_folder
from mslesion.services.segmentation.inputs import ContextChannel
from mslesion.services.segmentation.manifest import Normalisation, Thresholds


def random_net(channels: int, seed: int) -> CascadeNet:
    """A net with random weights and non-trivial batch-norm statistics, in eval mode."""
    torch.manual_seed(seed)
    net = CascadeNet(channels)
    for bn in (net.bn1, net.bn2):
        bn.running_mean.normal_(0, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.normal_(0, 0.2)
    return net.eval()


def random_model(
    folder: Path,
    modalities: tuple[str, ...] = ("flair", "t1"),
    seed: int = 0,
    thresholds: Thresholds | None = None,
    normalisation: Normalisation | None = None,
    context: tuple[ContextChannel, ...] = (),
) -> Path:
    """Export a cascade of two random nets to ``folder``; returns the folder."""
    channels = len(modalities) + len(context)
    export_model_folder(
        random_net(channels, seed),
        random_net(channels, seed + 1),
        folder,
        name="random-test",
        version="0.0.0",
        modalities=list(modalities),
        spacing_mm=(1.0, 1.0, 1.0),
        thresholds=thresholds or Thresholds(),
        training={"note": "random weights for tests"},
        normalisation=normalisation,
        context=list(context),
    )
    return folder
