"""Synthetic training copies: lesions pasted in, then re-gridded as serving interpolates."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from scipy import ndimage

from mslesion.devtools.phantom import write_phantom_dataset
from mslesion.models.training.cascade_train import CascadeTrainConfig, _synthetic_copies
from mslesion.models.training.dataset import Subject, load_subject
from mslesion.models.training.lesion_bank import LesionBank


def _subject(tmp_path: Path) -> Subject:
    write_phantom_dataset(tmp_path / "data", n_subjects=1, shape=(40, 48, 40), seed=3)
    return load_subject(tmp_path / "data" / "subject01", ["flair", "t1"])


def _bank(tmp_path: Path) -> Path:
    ball = np.sum((np.indices((5, 5, 5)) - 2) ** 2, axis=0) <= 4
    bank = LesionBank(shapes=[ball], rel_centroids=np.full((1, 3), 0.5), patient_of=["x"])
    bank.save(tmp_path / "bank.npz")
    return tmp_path / "bank.npz"


def _copy(subject: Subject, config: CascadeTrainConfig) -> Subject:
    (copy,) = _synthetic_copies([subject], config, np.random.default_rng(0))
    return copy


def test_a_regridded_copy_moves_its_anatomy_and_lesions_as_one(tmp_path: Path) -> None:
    subject = _subject(tmp_path)
    plain = CascadeTrainConfig(
        modalities=["flair", "t1"], synthetic_copies=1, lesions_per_copy=4,
        lesion_bank=_bank(tmp_path),
    )  # fmt: skip
    still = _copy(subject, plain)
    moved = _copy(subject, dataclasses.replace(plain, regrid=1.0))
    # The same lesions were pasted (the random stream up to the paste is the same) ...
    assert still.mask.sum() > 0
    # ... and then moved with the image by at most a few voxels (rotation < 3°, shift < 1/2).
    shift = np.subtract(ndimage.center_of_mass(moved.mask), ndimage.center_of_mass(still.mask))
    assert 0.0 < np.abs(shift).max() < 3.0
    assert not np.array_equal(moved.images["flair"], still.images["flair"])
    brain = moved.images["flair"] != 0
    assert (moved.images["t1"][~brain] == 0).all() and not (moved.mask & ~brain).any()
    assert moved.wm_prior is None or moved.wm_prior.shape == brain.shape


def test_without_regrid_the_copies_are_what_they_were(tmp_path: Path) -> None:
    subject = _subject(tmp_path)
    config = CascadeTrainConfig(
        modalities=["flair", "t1"], synthetic_copies=1, lesions_per_copy=4,
        lesion_bank=_bank(tmp_path), regrid=0.0,
    )  # fmt: skip
    first, again = _copy(subject, config), _copy(subject, config)
    np.testing.assert_array_equal(first.images["flair"], again.images["flair"])
    assert (first.images["flair"] != 0).sum() == (subject.images["flair"] != 0).sum()


def _bright_and_changed(tmp_path: Path, **change: object) -> tuple[Subject, Subject, np.ndarray]:
    """The default copy, the copy with ``change`` to the config, and the pasted voxels."""
    subject = _subject(tmp_path)
    base = CascadeTrainConfig(
        modalities=["flair", "t1"], synthetic_copies=1, lesions_per_copy=4,
        lesion_bank=_bank(tmp_path),
    )  # fmt: skip
    default, changed = _copy(subject, base), _copy(subject, dataclasses.replace(base, **change))
    # Same stream, same places: only the pasted lesions' intensities may differ.
    np.testing.assert_array_equal(default.mask, changed.mask)
    new = default.mask & ~subject.mask
    assert new.any()
    return default, changed, new


def test_pasted_lesions_take_the_configured_flair_contrast(tmp_path: Path) -> None:
    bright, faint, new = _bright_and_changed(tmp_path, lesion_flair_contrast=(1.1, 1.2))
    np.testing.assert_array_equal(bright.images["t1"], faint.images["t1"])
    assert faint.images["flair"][new].mean() < 0.9 * bright.images["flair"][new].mean()


def test_pasted_lesions_can_be_t1_isointense(tmp_path: Path) -> None:
    dark, iso, new = _bright_and_changed(tmp_path, lesion_t1_contrast=(1.0, 1.0))
    np.testing.assert_array_equal(dark.images["flair"], iso.images["flair"])
    # The default darkens the lesion on T1 (0.55-0.8 × white matter); 1.0 leaves it near the
    # white matter's level.
    assert dark.images["t1"][new].mean() < 0.85 * iso.images["t1"][new].mean()
