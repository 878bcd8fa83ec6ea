"""Training input checks: clear errors for missing files, grid/spacing mismatch, empty masks."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mslesion.devtools.phantom import write_phantom_dataset
from mslesion.models.training.dataset import load_dataset, load_subject
from mslesion.services.errors import InputError

SHAPE = (32, 36, 34)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    write_phantom_dataset(tmp_path, n_subjects=2, shape=SHAPE, seed=5, n_lesions=4)
    return tmp_path


def _rewrite(
    path: Path, data: np.ndarray | None = None, zooms: tuple[float, ...] | None = None
) -> None:
    img = nib.load(str(path))
    arr = np.asarray(img.dataobj) if data is None else data
    affine = img.affine.copy()
    if zooms is not None:
        affine[:3, :3] = np.diag(np.sign(np.diag(affine[:3, :3])) * np.array(zooms))
    nib.save(nib.Nifti1Image(arr, affine), str(path))


def test_loads_subjects(data: Path) -> None:
    subjects = load_dataset(data, ["flair", "t1", "t2"])
    assert [s.name for s in subjects] == ["subject01", "subject02"]
    assert subjects[0].images["flair"].shape == SHAPE and subjects[0].mask.any()


def test_missing_file_lists_what_is_there(data: Path) -> None:
    (data / "subject01" / "T1.nii.gz").unlink()
    with pytest.raises(InputError, match=r"subject01: missing t1 .*found FLAIR.nii.gz"):
        load_subject(data / "subject01", ["flair", "t1"])


def test_missing_mask(data: Path) -> None:
    (data / "subject02" / "lesion_mask.nii.gz").unlink()
    with pytest.raises(InputError, match="subject02: missing mask"):
        load_dataset(data, ["flair"])


def test_shape_mismatch(data: Path) -> None:
    _rewrite(data / "subject01" / "T1.nii.gz", np.zeros((32, 36, 33), np.float32))
    with pytest.raises(InputError, match=r"subject01: t1 has shape \(32, 36, 33\)"):
        load_subject(data / "subject01", ["flair", "t1"])


def test_spacing_mismatch_between_subjects(data: Path) -> None:
    for name in ("FLAIR", "T1", "T2", "lesion_mask"):
        _rewrite(data / "subject02" / f"{name}.nii.gz", zooms=(1.0, 1.0, 2.0))
    with pytest.raises(InputError, match=r"subject02 has voxel spacing \(1.0, 1.0, 2.0\) mm"):
        load_dataset(data, ["flair", "t1"])


def test_empty_mask(data: Path) -> None:
    _rewrite(data / "subject01" / "lesion_mask.nii.gz", np.zeros(SHAPE, np.uint8))
    with pytest.raises(InputError, match="subject01: the lesion mask is empty"):
        load_subject(data / "subject01", ["flair"])


def test_no_subjects(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no subject folders"):
        load_dataset(tmp_path, ["flair"])
