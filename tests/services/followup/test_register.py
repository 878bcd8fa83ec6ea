"""The prior FLAIR onto the current one: a known head motion is recovered, a mismatch refused."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from mslesion.services.errors import RegistrationError
from mslesion.services.followup.model import RegistrationStatus
from mslesion.services.followup.register import align_prior, resample_to_current


def _flair(shared_data: Path) -> sitk.Image:
    path = shared_data / "open-ms" / "cross_sectional" / "patient07" / "FLAIR.nii.gz"
    return sitk.ReadImage(str(path), sitk.sitkFloat32)


def _brain(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image) > 0


def _moved(
    image: sitk.Image, degrees: float, shift_mm: tuple[float, float, float]
) -> tuple[sitk.Image, sitk.Euler3DTransform]:
    """The head moved (rotated about left-right, shifted), resampled onto 1 x 1 x 3 mm slices."""
    motion = sitk.Euler3DTransform()
    centre = image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in image.GetSize()])
    motion.SetCenter(centre)
    motion.SetRotation(math.radians(degrees), 0.0, 0.0)
    motion.SetTranslation(shift_mm)
    grid = sitk.Image(
        [image.GetSize()[0], image.GetSize()[1], image.GetSize()[2] // 3], sitk.sitkFloat32
    )
    grid.SetSpacing((1.0, 1.0, 3.0))
    grid.SetOrigin(image.GetOrigin())
    grid.SetDirection(image.GetDirection())
    moved = sitk.Resample(image, grid, motion, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return moved, motion


def test_a_known_head_motion_is_recovered_within_a_millimetre(shared_data: Path) -> None:
    prior = _flair(shared_data)
    current, motion = _moved(prior, 6.0, (4.0, -3.0, 2.0))
    alignment = align_prior(current, _brain(current), prior, _brain(prior))
    assert alignment.summary.status is RegistrationStatus.REGISTERED
    assert alignment.summary.brain_overlap_dice is not None
    assert alignment.summary.brain_overlap_dice > 0.95
    # Current points map to prior points as the simulated motion does, over the brain.
    points = np.argwhere(_brain(current))[::5000][:, ::-1].astype(float)
    errors = [
        np.linalg.norm(
            np.subtract(
                alignment.transform.TransformPoint(
                    p := current.TransformContinuousIndexToPhysicalPoint(i.tolist())
                ),
                motion.TransformPoint(p),
            )
        )
        for i in points
    ]
    assert float(np.max(errors)) < 1.0
    assert alignment.summary.rotation_deg == pytest.approx(6.0, abs=0.5)


def test_resampling_brings_the_prior_onto_the_current_grid(shared_data: Path) -> None:
    prior = _flair(shared_data)
    current, _ = _moved(prior, 3.0, (2.0, 0.0, 0.0))
    alignment = align_prior(current, _brain(current), prior, _brain(prior))
    pulled = resample_to_current(sitk.GetArrayFromImage(prior), prior, current, alignment.transform)
    now = sitk.GetArrayFromImage(current)
    assert pulled.shape == now.shape
    inside = _brain(current)
    assert np.corrcoef(pulled[inside], now[inside])[0, 1] > 0.95


def test_a_prior_that_is_not_this_head_is_refused_with_the_reason(shared_data: Path) -> None:
    current = _flair(shared_data)
    prior = sitk.Image(current)
    array = np.zeros(sitk.GetArrayViewFromImage(prior).shape, dtype=np.float32)
    array[80:100, 100:120, 80:100] = 1000.0  # a small block: no brain to align with
    noise = sitk.GetImageFromArray(array)
    noise.CopyInformation(current)
    with pytest.raises(RegistrationError, match="could not be aligned"):
        align_prior(current, _brain(current), noise, array > 0)
