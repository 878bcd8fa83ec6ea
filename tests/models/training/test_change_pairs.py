"""Synthetic visit pairs for the change detector: known change, nuisance everywhere else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from mslesion.devtools.phantom import write_phantom_dataset
from mslesion.models.training.change_pairs import PairOptions, SyntheticPair, synthesise_pair
from mslesion.models.training.change_train import pair_stack, paste_region
from mslesion.models.training.dataset import Subject, load_subject
from mslesion.models.training.lesion_bank import LesionBank

SHAPE = (48, 56, 48)


def _subject(tmp_path: Path) -> Subject:
    write_phantom_dataset(tmp_path / "data", n_subjects=1, shape=SHAPE, seed=5, n_lesions=4)
    return load_subject(tmp_path / "data" / "subject01", ["flair"])


def _bank() -> LesionBank:
    ball = np.sum((np.indices((5, 5, 5)) - 2) ** 2, axis=0) <= 4
    return LesionBank(shapes=[ball], rel_centroids=np.full((1, 3), 0.5), patient_of=["x"])


def _pair(subject: Subject, seed: int, **options: Any) -> SyntheticPair:
    flair = subject.images["flair"]
    wm = paste_region(flair, None)
    opts = PairOptions(**options)
    return synthesise_pair(flair, subject.mask, _bank(), np.random.default_rng(seed), opts, wm=wm)


def test_the_label_is_the_new_tissue_and_it_is_brighter_now(tmp_path: Path) -> None:
    subject = _subject(tmp_path)
    pair = _pair(subject, 1, new_lesions=(3, 3), enlarging=(0, 0), vanishing=(0, 0))
    assert pair.n_new >= 1 and pair.n_enlarging == 0
    change = pair.change
    assert change.any()
    # the change lies off the existing lesions and inside the brain both visits cover
    assert not (change & subject.mask.astype(bool)).sum() > 0.1 * change.sum()
    assert not (change & ~pair.brain).any()
    stack, brain = pair_stack(pair.prior, pair.current)
    rise = stack[0] - stack[1]
    core = ndimage.binary_erosion(change) if ndimage.binary_erosion(change).any() else change
    assert np.median(rise[core]) > 1.0
    assert abs(np.median(rise[brain & ~ndimage.binary_dilation(change, iterations=3)])) < 0.2


def test_without_change_the_visits_differ_by_acquisition_only(tmp_path: Path) -> None:
    subject = _subject(tmp_path)
    pair = _pair(subject, 2, new_lesions=(0, 0), enlarging=(0, 0), vanishing=(0, 0))
    assert not pair.change.any()
    assert not np.array_equal(pair.prior, pair.current)
    stack, brain = pair_stack(pair.prior, pair.current)
    assert np.corrcoef(stack[0][brain], stack[1][brain])[0, 1] > 0.8


def test_grown_lesions_are_labelled_by_their_rim_only(tmp_path: Path) -> None:
    subject = _subject(tmp_path)
    pair = _pair(subject, 3, new_lesions=(0, 0), enlarging=(2, 2), vanishing=(0, 0), thick_prob=0.0)
    assert pair.n_enlarging >= 1
    lesions = subject.mask.astype(bool)
    rim = pair.change
    # the rim hugs an existing lesion (the visits move by < 1 voxel)
    near = ndimage.binary_dilation(lesions, iterations=4)
    assert rim.any() and (rim & near).sum() >= 0.9 * rim.sum()


def test_the_same_seed_gives_the_same_pair(tmp_path: Path) -> None:
    subject = _subject(tmp_path)
    a, b = _pair(subject, 4), _pair(subject, 4)
    np.testing.assert_array_equal(a.current, b.current)
    np.testing.assert_array_equal(a.change, b.change)
