"""Re-gridding augmentation: the anatomy moves as one, as served scans are interpolated."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from mslesion.models.training.regrid import MAX_ROTATION_DEG, random_rigid, regrid

SHAPE = (40, 44, 36)


def _head() -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """A box brain: smooth 'tissue' with a bright 'lesion' ball (FLAIR), voxel-scale texture
    (T1), the lesion mask and a prior."""
    rng = np.random.default_rng(5)
    brain = np.zeros(SHAPE, bool)
    brain[6:34, 6:38, 6:30] = True
    tissue = ndimage.gaussian_filter(rng.uniform(50, 150, SHAPE), 1.5).astype(np.float32)
    x, y, z = np.indices(SHAPE)
    lesion = (x - 15) ** 2 + (y - 25) ** 2 + (z - 18) ** 2 <= 16
    flair = np.where(brain, tissue + 200.0 * lesion, 0.0).astype(np.float32)
    t1 = np.where(brain, rng.uniform(100, 300, SHAPE), 0.0).astype(np.float32)  # voxel texture
    prior = np.where(brain, 0.8, 0.0).astype(np.float32)
    return {"flair": flair, "t1": t1}, brain, lesion, prior


def test_no_rotation_and_no_shift_changes_nothing() -> None:
    images, brain, lesion, prior = _head()
    out = regrid(images, brain, lesion, prior, sitk.Euler3DTransform())
    for name, image in images.items():
        np.testing.assert_allclose(out.images[name], image, atol=1e-2)
    np.testing.assert_array_equal(out.mask, lesion)
    assert out.wm_prior is not None
    np.testing.assert_allclose(out.wm_prior, prior, atol=1e-6)


def test_image_lesion_and_mask_move_together_by_the_transform() -> None:
    images, brain, lesion, prior = _head()
    transform = random_rigid(SHAPE, np.random.default_rng(11))
    out = regrid(images, brain, lesion, prior, transform)
    centre = np.array(ndimage.center_of_mass(lesion))
    # The transform maps output points to input points: the ball is now where its inverse
    # sends the old centre.
    expected = np.array(transform.GetInverse().TransformPoint(tuple(float(c) for c in centre)))
    found_mask = np.array(ndimage.center_of_mass(out.mask))
    bright = out.images["flair"] > 200
    found_image = np.array(ndimage.center_of_mass(bright))
    np.testing.assert_allclose(found_mask, expected, atol=0.5)
    np.testing.assert_allclose(found_image, expected, atol=0.5)
    assert not np.allclose(expected, centre, atol=0.05)  # it did move
    assert abs(int(out.mask.sum()) - int(lesion.sum())) <= 0.2 * lesion.sum()


def test_a_regridded_copy_is_a_served_scan_background_zero_brain_positive() -> None:
    images, brain, lesion, prior = _head()
    out = regrid(images, brain, lesion, prior, random_rigid(SHAPE, np.random.default_rng(2)))
    moved_brain = out.images["flair"] != 0
    for image in out.images.values():
        assert image.dtype == np.float32
        assert (image[~moved_brain] == 0).all()
        assert (image[moved_brain] > 0).all()
    assert not (out.mask & ~moved_brain).any()
    assert out.wm_prior is not None and 0.0 <= out.wm_prior.min() <= out.wm_prior.max() <= 1.0


def test_the_interpolation_blurs_the_lesion_as_serving_does() -> None:
    images, brain, lesion, prior = _head()
    transform = sitk.Euler3DTransform()
    transform.SetTranslation((0.5, 0.5, 0.5))  # every sample half-way between two
    out = regrid(images, brain, lesion, prior, transform)
    inside = (slice(10, 30), slice(10, 34), slice(10, 26))

    def detail(image: np.ndarray) -> float:  # energy of the finest scales inside the brain
        return float(np.mean(ndimage.laplace(image.astype(np.float64))[inside] ** 2))

    assert detail(out.images["t1"]) < 0.9 * detail(images["t1"])


def test_the_random_transform_is_small_and_reproducible() -> None:
    first = random_rigid(SHAPE, np.random.default_rng(7))
    again = random_rigid(SHAPE, np.random.default_rng(7))
    assert first.GetParameters() == again.GetParameters()
    angles, shift = np.degrees(first.GetParameters()[:3]), first.GetParameters()[3:]
    assert np.abs(angles).max() <= MAX_ROTATION_DEG
    assert np.abs(shift).max() <= 0.5
