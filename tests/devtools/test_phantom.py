"""Tests of the synthetic phantom generator (mslesion/devtools/phantom.py)."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from mslesion.devtools.phantom import (
    BACKGROUND,
    CSF,
    DEFAULT_SHAPE,
    FILE_NAMES,
    WHITE_MATTER,
    Phantom,
    make_phantom,
    phantom_affine,
    subject_seeds,
    write_phantom,
    write_phantom_dataset,
)
from mslesion.services.config import get_settings
from mslesion.services.errors import InputError
from mslesion.services.segmentation.lesions import label_lesions

SMALL_SHAPE = (48, 56, 48)
IMAGE_NAMES = ("flair", "t1", "t2")
ALL_ARRAYS = ("flair", "t1", "t2", "mask", "brain", "affine", "tissue")


@pytest.fixture(scope="module")
def phantom() -> Phantom:
    return make_phantom(seed=7)


def _load(path: Path) -> nib.Nifti1Image:
    image = nib.load(path)
    assert isinstance(image, nib.Nifti1Image), path
    return image


def _healthy_white_matter(p: Phantom) -> np.ndarray:
    return (p.tissue == WHITE_MATTER) & (p.mask == 0)


def test_same_seed_gives_identical_phantoms() -> None:
    first = make_phantom(SMALL_SHAPE, n_lesions=6, seed=3)
    second = make_phantom(SMALL_SHAPE, n_lesions=6, seed=3)
    for name in ALL_ARRAYS:
        a, b = getattr(first, name), getattr(second, name)
        assert a.dtype == b.dtype, name
        assert np.array_equal(a, b), name


def test_different_seeds_give_different_phantoms() -> None:
    first = make_phantom(SMALL_SHAPE, n_lesions=6, seed=1)
    second = make_phantom(SMALL_SHAPE, n_lesions=6, seed=2)
    for name in ("flair", "t1", "t2", "mask", "brain"):
        assert not np.array_equal(getattr(first, name), getattr(second, name)), name


def test_arrays_have_documented_shapes_and_dtypes(phantom: Phantom) -> None:
    assert phantom.shape == DEFAULT_SHAPE
    for name in IMAGE_NAMES:
        image = getattr(phantom, name)
        assert image.dtype == np.float32, name
        assert image.shape == DEFAULT_SHAPE, name
    assert phantom.mask.dtype == np.uint8
    assert set(np.unique(phantom.mask).tolist()) == {0, 1}
    assert phantom.brain.dtype == np.bool_
    assert phantom.tissue.dtype == np.uint8


def test_affine_is_1mm_las_centred() -> None:
    affine = phantom_affine(DEFAULT_SHAPE)
    assert affine.dtype == np.float64
    assert np.array_equal(affine[:3, :3], np.diag([-1.0, 1.0, 1.0]))
    assert nib.aff2axcodes(affine) == ("L", "A", "S")
    centre_voxel = np.array([s // 2 for s in DEFAULT_SHAPE] + [1])
    assert np.allclose(affine @ centre_voxel, [0.0, 0.0, 0.0, 1.0])


def test_background_is_exactly_zero_and_brain_strictly_positive(phantom: Phantom) -> None:
    assert 0.1 < phantom.brain.mean() < 0.6
    assert np.array_equal(phantom.brain, phantom.tissue != BACKGROUND)
    for name in IMAGE_NAMES:
        image = getattr(phantom, name)
        assert np.all(image[~phantom.brain] == 0.0), name
        assert np.all(image[phantom.brain] > 0.0), name
        assert np.all(np.isfinite(image)), name


def test_brain_does_not_touch_grid_edge(phantom: Phantom) -> None:
    brain = phantom.brain
    for axis in range(3):
        assert not np.take(brain, 0, axis=axis).any()
        assert not np.take(brain, -1, axis=axis).any()


def test_lesions_lie_in_brain_mostly_white_matter_never_csf(phantom: Phantom) -> None:
    lesion = phantom.mask > 0
    assert lesion.any()
    assert not np.any(lesion & ~phantom.brain)
    assert not np.any(lesion & (phantom.tissue == CSF))
    assert np.mean(phantom.tissue[lesion] == WHITE_MATTER) >= 0.8


def test_lesions_prefer_periventricular_white_matter(phantom: Phantom) -> None:
    # Central CSF is the ventricles: sulci and the fissure are in the outer half of the brain.
    centre = (np.asarray(DEFAULT_SHAPE) - 1) / 2
    semi = 0.4 * np.asarray(DEFAULT_SHAPE)
    grid = np.indices(DEFAULT_SHAPE, dtype=np.float64)
    radius = np.sqrt(sum(((grid[i] - centre[i]) / semi[i]) ** 2 for i in range(3)))
    ventricles = (phantom.tissue == CSF) & (radius < 0.4)
    assert ventricles.sum() > 500
    distance = ndimage.distance_transform_edt(~ventricles)
    lesion_distance = distance[phantom.mask > 0].mean()
    white_matter_distance = distance[_healthy_white_matter(phantom)].mean()
    assert lesion_distance < 0.85 * white_matter_distance


def test_lesion_contrast_matches_clinical_sequences(phantom: Phantom) -> None:
    lesion = phantom.mask > 0
    white_matter = _healthy_white_matter(phantom)
    csf = phantom.tissue == CSF
    flair_wm = phantom.flair[white_matter].mean()
    t1_wm = phantom.t1[white_matter].mean()
    t2_wm = phantom.t2[white_matter].mean()
    # Real FLAIR lesions are 1.27-1.53x the white-matter peak on the 17 annotated scans:
    # brighter, cartoon lesions blur into a halo a model trained on MRI counts as lesion.
    assert 1.25 * flair_wm < phantom.flair[lesion].mean() < 1.8 * flair_wm
    assert phantom.t1[lesion].mean() < 0.9 * t1_wm
    assert phantom.t2[lesion].mean() > 1.3 * t2_wm
    # FLAIR suppresses CSF; T1 shows CSF dark; T2 shows CSF brightest.
    assert phantom.flair[csf].mean() < 0.7 * flair_wm
    assert phantom.t1[csf].mean() < 0.5 * t1_wm
    assert phantom.t2[csf].mean() > 1.5 * t2_wm


def test_images_are_not_piecewise_constant(phantom: Phantom) -> None:
    white_matter = ndimage.binary_erosion(_healthy_white_matter(phantom), iterations=2)
    values = phantom.flair[white_matter]
    relative_spread = values.std() / values.mean()
    # Noise (3 %) plus bias (up to 10 %), but still one tissue class.
    assert 0.02 < relative_spread < 0.15
    assert np.unique(values).size > 0.9 * values.size


@pytest.mark.parametrize(("seed", "n_lesions"), [(0, 12), (1, 12), (2, 5), (3, 20)])
def test_mask_has_about_n_lesions_components(seed: int, n_lesions: int) -> None:
    p = make_phantom(n_lesions=n_lesions, seed=seed)
    _, count = label_lesions(p.mask)
    assert n_lesions // 2 <= count <= n_lesions


def test_lesions_do_not_touch_when_white_matter_has_room(phantom: Phantom) -> None:
    # The default grid has room for 12 separate lesions: none may merge with another.
    _, count = label_lesions(phantom.mask)
    assert count == 12


def test_lesion_sizes_are_in_the_documented_range(phantom: Phantom) -> None:
    labels, count = label_lesions(phantom.mask)
    sizes = np.bincount(labels.ravel())[1:]
    assert count > 0
    # A 1.5-voxel sphere rasterises to at least 7 voxels; four 5-voxel ellipsoids stay well
    # below 4 * (4/3)pi * 5**3 ~ 2100 voxels.
    assert sizes.min() >= 7
    assert sizes.max() <= 2100


def test_zero_lesions_gives_empty_mask() -> None:
    p = make_phantom(SMALL_SHAPE, n_lesions=0, seed=0)
    assert not p.mask.any()
    assert p.brain.any()


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"shape": (16, 112, 96)}, "(16, 112, 96)"),
        ({"shape": (96, 112)}, "(96, 112)"),
        ({"shape": (96.0, 112, 96)}, "96.0"),
        ({"n_lesions": -1}, "-1"),
        ({"seed": -5}, "-5"),
    ],
)
def test_bad_arguments_raise_input_error_naming_the_value(
    kwargs: dict[str, object], fragment: str
) -> None:
    with pytest.raises(InputError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        make_phantom(**kwargs)  # type: ignore[arg-type]


def test_written_files_load_back_identically(phantom: Phantom, tmp_path: Path) -> None:
    paths = write_phantom(phantom, tmp_path / "subject")
    assert set(paths) == set(FILE_NAMES)
    expected: dict[str, np.ndarray] = {
        "FLAIR": phantom.flair,
        "T1": phantom.t1,
        "T2": phantom.t2,
        "lesion_mask": phantom.mask,
    }
    for name, path in paths.items():
        assert path == tmp_path / "subject" / FILE_NAMES[name]
        image = _load(path)
        data = np.asanyarray(image.dataobj)
        assert data.dtype == expected[name].dtype, name
        assert np.array_equal(data, expected[name]), name
        assert np.array_equal(image.affine, phantom.affine), name
        assert int(image.header["qform_code"]) == 1, name
        assert int(image.header["sform_code"]) == 1, name
        assert image.header.get_xyzt_units()[0] == "mm", name
        assert nib.aff2axcodes(image.affine) == ("L", "A", "S"), name


def test_dataset_writes_one_distinct_folder_per_subject(tmp_path: Path) -> None:
    folders = write_phantom_dataset(tmp_path, n_subjects=3, shape=SMALL_SHAPE, seed=4, n_lesions=4)
    assert [f.name for f in folders] == ["subject01", "subject02", "subject03"]
    flairs: list[np.ndarray] = []
    for folder in folders:
        assert sorted(p.name for p in folder.iterdir()) == sorted(FILE_NAMES.values())
        flairs.append(np.asanyarray(_load(folder / "FLAIR.nii.gz").dataobj))
    assert not np.array_equal(flairs[0], flairs[1])
    assert not np.array_equal(flairs[1], flairs[2])
    # Subject k is make_phantom with the k-th dataset seed.
    again = make_phantom(SMALL_SHAPE, n_lesions=4, seed=subject_seeds(3, seed=4)[1])
    assert np.array_equal(flairs[1], again.flair)


def test_subject_seeds_are_prefix_stable_and_seed_dependent() -> None:
    assert subject_seeds(5, seed=0)[:3] == subject_seeds(3, seed=0)
    assert set(subject_seeds(5, seed=0)).isdisjoint(subject_seeds(5, seed=1))
    assert len(set(subject_seeds(50, seed=0))) == 50


def test_dataset_rejects_zero_subjects(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="got 0"):
        write_phantom_dataset(tmp_path, n_subjects=0)


@pytest.mark.shared_data
def test_file_conventions_match_the_open_ms_training_data(phantom: Phantom, tmp_path: Path) -> None:
    real_dir = get_settings().shared_data_dir / "open-ms" / "cross_sectional" / "patient07"
    if not real_dir.is_dir():
        if os.environ.get("MSLESION_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(f"shared data required but {real_dir} is missing")
        pytest.skip(f"{real_dir} is not available")
    paths = write_phantom(phantom, tmp_path)
    for name, path in paths.items():
        real = _load(real_dir / FILE_NAMES[name])
        synthetic = _load(path)
        assert synthetic.get_data_dtype() == real.get_data_dtype(), name
        assert nib.aff2axcodes(synthetic.affine) == nib.aff2axcodes(real.affine), name
        assert np.allclose(synthetic.header.get_zooms(), real.header.get_zooms()), name
        assert np.allclose(synthetic.affine[:3, :3], real.affine[:3, :3]), name
