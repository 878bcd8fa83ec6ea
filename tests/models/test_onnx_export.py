"""ONNX export round trip: ONNX Runtime reproduces torch, and weights read back exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from mslesion.models.onnx_export import build_onnx, load_net_from_onnx, save_onnx
from tests.model_factory import random_net


def _session(model_bytes: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])


def test_patch_graph_matches_torch() -> None:
    net = random_net(2, seed=3)
    x = np.random.default_rng(0).normal(size=(64, 2, 11, 11, 11)).astype(np.float32)
    got = _session(build_onnx(net, dense=False).SerializeToString()).run(None, {"x": x})[0]
    with torch.no_grad():
        want = torch.softmax(net(torch.from_numpy(x)), 1)[:, 1].numpy()
    assert got.shape == (64, 1, 1, 1, 1)
    np.testing.assert_allclose(got.reshape(-1), want, atol=1e-5)


def test_dense_graph_matches_torch_with_dynamic_axes() -> None:
    net = random_net(3, seed=4)
    sess = _session(build_onnx(net, dense=True).SerializeToString())
    for shape in [(1, 3, 20, 20, 20), (2, 3, 13, 27, 18)]:
        x = np.random.default_rng(1).normal(size=shape).astype(np.float32)
        got = sess.run(None, {"x": x})[0]
        with torch.no_grad():
            want = torch.softmax(net.dense_forward(torch.from_numpy(x)), 1)[:, 1:2].numpy()
        assert got.shape == (shape[0], 1, *(s - 9 for s in shape[2:]))
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_weights_read_back_identically(tmp_path: Path) -> None:
    net = random_net(2, seed=6)
    path = save_onnx(net, tmp_path / "net.onnx", dense=True)
    back = load_net_from_onnx(path)
    for (k, a), b in zip(net.state_dict().items(), back.state_dict().values(), strict=True):
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(a, b), k
    assert back.bn1.eps == net.bn1.eps
