"""White-matter-peak standardisation: scanner gain cancels, white matter is 0, and training
and serving build the very same input stack."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from mslesion.models.training.cascade_train import CascadeTrainConfig, prepare_sets
from mslesion.models.training.contrast import random_contrast
from mslesion.models.training.dataset import load_subject
from mslesion.services.errors import InputError
from mslesion.services.segmentation.cascade import CascadeModel
from mslesion.services.segmentation.inputs import (
    NAWM_PRIOR_MIN,
    ContextChannel,
    Standardisation,
    prepare_stack,
    smooth_in_brain,
    white_matter_peak,
)
from mslesion.services.segmentation.manifest import Normalisation
from tests.model_factory import random_model

WM_PEAK = Standardisation.WM_PEAK
SHAPE = (40, 44, 36)


def _head(seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """FLAIR/T1 of a brain with white matter (prior 1), grey matter (prior 0) and lesions."""
    rng = np.random.default_rng(seed)
    brain = np.zeros(SHAPE, dtype=bool)
    brain[4:-4, 4:-4, 4:-4] = True
    wm = np.zeros(SHAPE, dtype=np.float32)
    wm[10:-10, 10:-10, 8:-8] = 1.0
    lesions = np.zeros(SHAPE, dtype=bool)
    lesions[14:17, 14:17, 12:15] = True
    lesions[24:26, 26:29, 20:23] = True
    flair = np.where(wm > 0, 400.0, 470.0) + rng.normal(0, 12, SHAPE)
    flair[lesions] = 640.0
    t1 = np.where(wm > 0, 800.0, 560.0) + rng.normal(0, 15, SHAPE)
    t1[lesions] = 520.0
    images = {
        "flair": np.where(brain, flair, 0).astype(np.float32),
        "t1": np.where(brain, t1, 0).astype(np.float32),
    }
    return images, wm, lesions


def test_normal_white_matter_is_zero_and_lesions_keep_their_ratio() -> None:
    images, wm, lesions = _head()
    stack, brain = prepare_stack(images, ["flair", "t1"], standardisation=WM_PEAK, wm_prior=wm)
    nawm = brain & (wm >= NAWM_PRIOR_MIN) & ~lesions
    assert abs(float(np.median(stack[0][nawm]))) < 0.02
    assert abs(float(np.median(stack[0][lesions])) - 0.6) < 0.05  # 640 / 400 - 1
    assert abs(float(np.median(stack[1][lesions])) + 0.35) < 0.05  # 520 / 800 - 1
    assert np.all(stack[:, ~brain] == 0)


def test_scanner_gain_cancels() -> None:
    images, wm, _ = _head()
    scaled = {k: v * 3.7 for k, v in images.items()}
    a, _ = prepare_stack(images, ["flair", "t1"], standardisation=WM_PEAK, wm_prior=wm)
    b, _ = prepare_stack(scaled, ["flair", "t1"], standardisation=WM_PEAK, wm_prior=wm)
    np.testing.assert_allclose(a, b, atol=2e-2)


def test_the_peak_ignores_a_heavy_lesion_load() -> None:
    images, wm, _ = _head()
    heavy = images["flair"].copy()
    region = wm >= NAWM_PRIOR_MIN
    lesion_shape = heavy[10:18, 10:-10, 8:-8].shape  # a third of the white matter is lesion
    heavy[10:18, 10:-10, 8:-8] = np.random.default_rng(1).normal(700.0, 40.0, lesion_shape)
    base = white_matter_peak(images["flair"], region, "flair")
    assert abs(white_matter_peak(heavy, region, "flair") / base - 1) < 0.03


def test_context_channel_and_missing_prior() -> None:
    both, wm, _ = _head()
    images = {"flair": both["flair"]}
    stack, brain = prepare_stack(
        images, ["flair"], standardisation=WM_PEAK, wm_prior=wm, context=[ContextChannel.WM_PRIOR]
    )
    assert stack.shape == (2, *SHAPE)
    np.testing.assert_array_equal(stack[1], np.where(brain, wm, 0))
    with pytest.raises(InputError, match="needs the registered white-matter prior"):
        prepare_stack(images, ["flair"], standardisation=WM_PEAK)
    with pytest.raises(InputError, match="sure white matter"):
        prepare_stack(images, ["flair"], standardisation=WM_PEAK, wm_prior=np.zeros(SHAPE))


def _save(array: np.ndarray, path: Path) -> None:
    nib.save(nib.Nifti1Image(array, np.eye(4)), str(path))


@pytest.mark.parametrize("smoothing", [0.0, 0.5])
def test_training_and_serving_build_the_same_stack(tmp_path: Path, smoothing: float) -> None:
    images, wm, lesions = _head(seed=3)
    case = tmp_path / "data" / "case1"
    case.mkdir(parents=True)
    _save(images["flair"], case / "FLAIR.nii.gz")
    _save(images["t1"], case / "T1.nii.gz")
    _save(wm, case / "wm_prior.nii.gz")
    _save(lesions.astype(np.uint8), case / "lesion_mask.nii.gz")
    config = CascadeTrainConfig(
        modalities=["flair", "t1"],
        standardisation=WM_PEAK,
        context=(ContextChannel.WM_PRIOR,),
        smoothing=smoothing,
    )
    (trained,) = prepare_sets([load_subject(case, ["flair", "t1"])], config)

    folder = random_model(
        tmp_path / "model",
        ("flair", "t1"),
        normalisation=Normalisation(method=WM_PEAK, smoothing_voxels=smoothing),
        context=(ContextChannel.WM_PRIOR,),
    )
    model = CascadeModel(folder)
    served, brain = model.prepare(images, wm_prior=wm)
    np.testing.assert_array_equal(served, trained.stack)
    np.testing.assert_array_equal(brain, trained.brain)
    assert model.manifest.needs_wm_prior and model.manifest.channels == 3
    plain, _ = prepare_stack(images, ["flair", "t1"], standardisation=WM_PEAK, wm_prior=wm)
    assert np.array_equal(served[:2], plain) == (smoothing == 0)  # the manifest's σ is applied


def test_smoothing_stays_inside_the_brain() -> None:
    images, wm, lesions = _head()
    stack, brain = prepare_stack(
        images, ["flair", "t1"], standardisation=WM_PEAK, wm_prior=wm, smoothing=0.5
    )
    assert np.all(stack[:, ~brain] == 0)
    flat = {k: np.where(brain, 500.0, 0.0).astype(np.float32) for k in images}
    (flat_out,) = smooth_in_brain({"flair": flat["flair"]}, brain, 0.8).values()
    assert np.allclose(flat_out[brain], 500.0, rtol=1e-5)
    # A lesion keeps most of its contrast under σ 0.5 but its edge is softened.
    sharp, _ = prepare_stack(images, ["flair", "t1"], standardisation=WM_PEAK, wm_prior=wm)
    assert 0.3 < float(np.median(stack[0][lesions])) < float(np.median(sharp[0][lesions]))


def test_smoothing_makes_the_input_independent_of_the_sampling() -> None:
    """Half a voxel off the grid (cubic B-spline, as serving resamples): the smoothed input
    moves less than the raw one (0.59 of it here, on white noise, the worst case)."""
    images, _, _ = _head(seed=4)
    brain = images["flair"] != 0
    inner = ndimage.binary_erosion(brain, iterations=3)
    shifted = ndimage.shift(images["flair"], (0.5, 0.5, 0.0), order=3)
    raw_change = np.abs(shifted - images["flair"])[inner].mean()
    smooth = smooth_in_brain({"still": images["flair"], "moved": shifted}, brain, 0.5)
    smooth_change = np.abs(smooth["moved"] - smooth["still"])[inner].mean()
    assert smooth_change < 0.7 * raw_change


def test_contrast_augmentation_keeps_white_matter_and_background() -> None:
    images, wm, lesions = _head()
    brain = images["flair"] != 0
    rng = np.random.default_rng(0)
    changed = random_contrast(images, brain, wm, rng, max_log_gamma=0.5)
    region = brain & (wm >= NAWM_PRIOR_MIN)
    for name, image in changed.items():
        assert np.all(image[~brain] == 0) and np.all(image[brain] > 0)
        before = white_matter_peak(images[name], region, name)
        assert abs(white_matter_peak(image, region, name) / before - 1) < 0.05
    assert not np.allclose(changed["flair"][lesions], images["flair"][lesions], rtol=0.01)
