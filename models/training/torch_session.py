"""Dense inference sessions over a net being trained.

Training needs net 1's predictions on the training volumes (to find its false positives).
Going through :func:`services.segmentation.dense.dense_predict` keeps tiling and padding
identical to serving. ONNX Runtime is used when installed (about 8× faster than torch's
dilated 3D convolutions on CPU); otherwise the torch net stands in behind the same interface.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from mslesion.models.network import CascadeNet
from mslesion.models.onnx_export import build_onnx
from mslesion.services.config import Provider
from mslesion.services.errors import ProviderError


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


def dense_session(net: CascadeNet) -> Any:
    """The fastest available dense session for ``net``: ONNX Runtime, else torch."""
    from mslesion.services.segmentation.runtime import create_session

    try:
        return create_session(build_onnx(net.eval(), dense=True).SerializeToString(), Provider.AUTO)
    except ProviderError:
        return TorchDenseSession(net)
