"""The shipped change detector on a real head: nothing changes against itself, new tissue does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from mslesion.services.config import SHIPPED_MODELS_DIR, Settings
from mslesion.services.errors import ModelError
from mslesion.services.followup.change_detector import ChangeDetector, load_change_detector
from mslesion.services.followup.model import ChangeThresholds


def test_the_setting_turns_the_detector_off_or_names_a_missing_one(tmp_path: Path) -> None:
    assert load_change_detector(Settings(followup_change_detector="none")) is None
    with pytest.raises(ModelError, match="no change detector in"):
        load_change_detector(Settings(followup_change_detector=tmp_path))
    detector = load_change_detector(Settings())
    assert detector is not None and detector.name.startswith("ms-change-flair ")
    assert load_change_detector(Settings()) is detector  # sessions are made once per process


def test_a_lesion_model_is_not_taken_for_a_change_detector() -> None:
    with pytest.raises(ModelError, match="not a change detector"):
        ChangeDetector(SHIPPED_MODELS_DIR / "flair")


@pytest.fixture(scope="module")
def head(shared_data: Path) -> tuple[sitk.Image, np.ndarray, np.ndarray]:
    """open-ms patient26's FLAIR (1 mm, skull-stripped), its brain and its lesions."""
    folder = shared_data / "open-ms" / "cross_sectional" / "patient26"
    flair = sitk.ReadImage(str(folder / "FLAIR.nii.gz"), sitk.sitkFloat32)
    lesions = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "lesion_mask.nii.gz"))) > 0
    return flair, sitk.GetArrayFromImage(flair) > 0, lesions


def _new_lesion(flair: sitk.Image, brain: np.ndarray, lesions: np.ndarray) -> np.ndarray:
    """A 5 mm ball in deep white matter, away from every lesion of the scan."""
    array = sitk.GetArrayFromImage(flair)
    inner = ndimage.binary_erosion(brain, iterations=12) & ~ndimage.binary_dilation(
        lesions, iterations=8
    )
    smooth = ndimage.gaussian_filter(array, 2.0)  # white matter: a smooth, mid-bright band
    low, high = np.percentile(smooth[brain], [55, 85])
    wm = ndimage.binary_erosion(inner & (smooth > low) & (smooth < high), iterations=2)
    spots = np.argwhere(wm)
    centre = spots[len(spots) // 2]
    grid = np.indices(array.shape)
    return np.sum((grid - centre[:, None, None, None]) ** 2, axis=0) <= 2.5**2


def test_an_unchanged_head_shows_no_change_and_a_new_lesion_does(
    head: tuple[sitk.Image, np.ndarray, np.ndarray],
) -> None:
    flair, brain, lesions = head
    detector = load_change_detector(Settings())
    assert detector is not None
    ball = _new_lesion(flair, brain, lesions)
    array = sitk.GetArrayFromImage(flair)
    current_array = array.copy()
    current_array[ball] = 1.6 * np.median(array[brain])  # FLAIR-bright, as a new lesion is
    current = sitk.GetImageFromArray(current_array)
    current.CopyInformation(flair)
    region = lesions | ball
    same = detector.read(flair, brain, flair, brain, sitk.Euler3DTransform(), region=region)
    assert same.probability.shape == array.shape
    # Against itself no lesion holds the tissue that would make it active (0.02 ml at 1 mm)
    rules = ChangeThresholds()
    active = same.probability[region] >= rules.change_probability
    assert active.sum() < rules.change_min_ml * 1000
    assert (same.probability[region] >= detector.t_bin).sum() < 0.01 * region.sum()
    changed = detector.read(current, brain, flair, brain, sitk.Euler3DTransform(), region=region)
    assert np.median(changed.probability[ball]) >= rules.change_probability
    # the scan's own lesions, present at both visits, stay unchanged
    assert np.percentile(changed.probability[lesions], 95) < 0.5
    assert set(changed.timings_s) == {"resample", "bias", "detect"}
