"""The two-stage sampling of training voxels, and its lesion-size balance."""

from __future__ import annotations

import numpy as np
import pytest

from mslesion.models.training.sampling import lesion_weights, net1_samples, net2_samples


def _mask_one_large_many_small() -> tuple[np.ndarray, np.ndarray]:
    """A 10×10×10 lesion and ten 2×2×2 lesions; returns (mask, small-lesion voxels)."""
    mask = np.zeros((40, 40, 40), dtype=bool)
    mask[2:12, 2:12, 2:12] = True
    small = np.zeros_like(mask)
    for i in range(10):
        x = 16 + 2 * (i % 5) * 2
        z = 20 + (i // 5) * 6
        small[x : x + 2, 30:32, z : z + 2] = True
    return mask | small, small


def _small_share(mask: np.ndarray, small: np.ndarray, balance: float) -> float:
    rng = np.random.default_rng(0)
    voxels, labels = net1_samples(mask, np.ones_like(mask), rng, 100, balance)
    pos = voxels[labels == 1]
    return float(small[tuple(pos.T)].mean())


def test_weights_give_every_lesion_the_same_share_at_balance_one() -> None:
    mask, small = _mask_one_large_many_small()
    weights = lesion_weights(mask, 1.0)
    lesion_voxels = np.argwhere(mask)
    on_small = small[tuple(lesion_voxels.T)]
    assert weights.sum() == pytest.approx(1.0)
    # 11 lesions of equal share: the ten small ones hold 10/11 of the mass.
    assert weights[on_small].sum() == pytest.approx(10 / 11)


def test_balance_draws_small_lesions_that_the_uniform_draw_starves() -> None:
    mask, small = _mask_one_large_many_small()
    # 80 of 1080 lesion voxels are small-lesion voxels: the seed's draw gives them ~7 %.
    assert _small_share(mask, small, 0.0) < 0.2
    assert _small_share(mask, small, 1.0) > 0.6
    assert 0.2 < _small_share(mask, small, 0.5) < _small_share(mask, small, 1.0)


def test_balance_zero_is_the_seed_draw_bit_for_bit() -> None:
    mask, _ = _mask_one_large_many_small()
    cands = np.ones_like(mask)
    a = net1_samples(mask, cands, np.random.default_rng(3), 100)
    b = net1_samples(mask, cands, np.random.default_rng(3), 100, 0.0)
    np.testing.assert_array_equal(a[0], b[0])
    # Under the cap every lesion voxel is used, whatever the balance.
    c = net1_samples(mask, cands, np.random.default_rng(3), 5000, 1.0)
    assert int(c[1].sum()) == int(mask.sum())


def test_net2_keeps_hard_negatives_with_balance() -> None:
    mask, _ = _mask_one_large_many_small()
    prob1 = np.zeros(mask.shape, dtype=np.float32)
    prob1[30:35, 2:6, 2:6] = 0.9  # net 1's false positives
    voxels, labels = net2_samples(
        mask, np.ones_like(mask), prob1, 0.5, np.random.default_rng(1), 100, 1.0
    )
    negatives = voxels[labels == 0]
    assert int(labels.sum()) == 100
    assert (prob1[tuple(negatives.T)] > 0.5).sum() == 80  # every hard negative is taken
