"""A torch net behind the small ONNX-Runtime-session interface the dense engine uses.

Training needs net 1's predictions on the training volumes (to find its false positives); going
through :func:`services.segmentation.dense.dense_predict` keeps tiling and padding identical to
serving.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from models.network import CascadeNet


class TorchDenseSession:
    """Duck-typed stand-in for ``onnxruntime.InferenceSession`` over ``net.dense_forward``."""

    def __init__(self, net: CascadeNet) -> None:
        self.net = net.eval()

    def get_inputs(self) -> list[Any]:
        """One input named ``x``, like the exported graph."""
        return [SimpleNamespace(name="x", shape=["N", self.net.in_channels, "D", "H", "W"])]

    def run(self, _outputs: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Lesion probability (N, 1, D-9, H-9, W-9) for an input tile batch."""
        with torch.no_grad():
            logits = self.net.dense_forward(torch.from_numpy(np.ascontiguousarray(feeds["x"])))
            return [torch.softmax(logits, dim=1)[:, 1:2].numpy()]
