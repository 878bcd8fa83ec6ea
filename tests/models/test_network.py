"""The torch network: the dense (dilated) form equals the patch classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mslesion.models.network import HALO_AFTER, HALO_BEFORE, PATCH_SIZE, CascadeNet
from tests.model_factory import random_net


def test_patch_forward_shape() -> None:
    net = random_net(3, seed=1)
    out = net(torch.randn(5, 3, PATCH_SIZE, PATCH_SIZE, PATCH_SIZE))
    assert out.shape == (5, 2)


def test_dense_output_is_input_minus_halo() -> None:
    net = random_net(2, seed=1)
    with torch.no_grad():
        out = net.dense_forward(torch.randn(1, 2, 20, 21, 22))
    assert out.shape == (1, 2, 20 - 9, 21 - 9, 22 - 9)
    assert HALO_BEFORE + HALO_AFTER == 9


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dense_equals_patchwise_in_torch(seed: int) -> None:
    net = random_net(2, seed)
    rng = np.random.default_rng(seed)
    vol = torch.from_numpy(rng.normal(size=(1, 2, 26, 25, 24)).astype(np.float32))
    with torch.no_grad():
        dense = torch.softmax(net.dense_forward(vol), 1)[0, 1]
        # the last dense row needs a 10-voxel patch (its 11th row is unused): stay inside
        starts = [tuple(rng.integers(0, s - 1) for s in dense.shape) for _ in range(200)]
        patches = torch.stack([vol[0, :, a : a + 11, b : b + 11, c : c + 11] for a, b, c in starts])
        patch = torch.softmax(net(patches), 1)[:, 1]
    expected = torch.stack([dense[s] for s in starts])
    assert torch.max(torch.abs(patch - expected)).item() <= 1e-5


def test_last_patch_row_is_outside_receptive_field() -> None:
    """Floor pooling (9 -> 4) ignores the 11th row: changing it must not change the output."""
    net = random_net(1, seed=4)
    x = torch.randn(1, 1, 11, 11, 11)
    y = x.clone()
    y[..., 10] += 5.0
    z = x.clone()
    z[..., 9] += 5.0
    with torch.no_grad():
        assert torch.equal(net(x), net(y))
        assert not torch.equal(net(x), net(z))


def test_freeze_features_keeps_batchnorm_statistics() -> None:
    net = random_net(2, seed=5)
    before = net.bn1.running_mean.clone()
    net.freeze_features()
    net.train()
    net(torch.randn(8, 2, 11, 11, 11) * 3 + 2)
    assert torch.equal(before, net.bn1.running_mean)
    assert not net.conv1.weight.requires_grad and net.fc1.weight.requires_grad
    assert isinstance(net, CascadeNet)
