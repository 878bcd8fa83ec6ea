"""Acquisition augmentation: thick slices blur across the slice axis only; brain stays brain."""

from __future__ import annotations

import numpy as np

from mslesion.models.training.acquisition import bias_field, simulate_clinical, thick_slices


def test_thick_slices_average_slabs_along_the_slice_axis() -> None:
    image = np.zeros((4, 4, 12), np.float32)
    image[:, :, 5] = 12.0
    out = thick_slices(image, thickness=3, phase=0)
    assert out.shape == image.shape
    # the bright plane is spread over its 3-slice slab, then interpolated back to 1 mm
    np.testing.assert_allclose(out[0, 0, 4], 4.0, atol=1e-5)
    assert out[0, 0, 2] > 0 and out[0, 0, 8] == 0
    np.testing.assert_allclose(out.sum(axis=2), image.sum(axis=2), rtol=0.35)
    # no blur within the plane
    np.testing.assert_array_equal(out[:, :, 4], np.full((4, 4), out[0, 0, 4]))


def test_thick_slices_keep_a_constant_image() -> None:
    image = np.full((3, 5, 17), 7.0, np.float32)
    np.testing.assert_allclose(thick_slices(image, 5, 2), image, atol=1e-5)


def test_bias_field_is_smooth_and_bounded() -> None:
    field = bias_field((20, 24, 22), np.random.default_rng(1), 0.15)
    assert field.min() >= 0.85 - 1e-6 and field.max() <= 1.15 + 1e-6
    assert np.abs(np.diff(field, axis=0)).max() < 0.05
    assert field.std() > 0.01


def test_simulate_clinical_keeps_background_zero_and_is_seeded() -> None:
    rng = np.random.default_rng(0)
    brain = np.zeros((20, 20, 20), bool)
    brain[4:16, 4:16, 4:16] = True
    images = {"flair": np.where(brain, rng.uniform(1, 2, brain.shape), 0).astype(np.float32)}
    a = simulate_clinical(images, brain, np.random.default_rng(3), thick_prob=1.0)
    b = simulate_clinical(images, brain, np.random.default_rng(3), thick_prob=1.0)
    np.testing.assert_array_equal(a["flair"], b["flair"])
    assert np.all(a["flair"][~brain] == 0) and np.all(a["flair"][brain] > 0)
    assert not np.allclose(a["flair"], images["flair"])
