"""Tests for lesion-synthesis augmentation (models.training.lesion_bank)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from mslesion.models.training.lesion_bank import (
    DEFAULT_CONTRAST,
    DEFAULT_EXCLUDE,
    LesionBank,
    build_lesion_bank,
    paste_lesions,
    white_matter_proxy,
)
from mslesion.services.segmentation.lesions import label_lesions

# Two patients keep the test fast: patient01 has a heavy load (~31 ml, >200 lesions, some
# confluent), patient02 a light one (~1.4 ml). patient07 is listed to prove it is excluded.
BANK_PATIENTS = ["patient01", "patient02", "patient07"]


# --------------------------------------------------------------------------------------
# Synthetic data (always run)
# --------------------------------------------------------------------------------------


def _load(path: Path) -> nib.Nifti1Image:
    img = nib.load(path)
    assert isinstance(img, nib.Nifti1Image)
    return img


def _write_patient(
    root: Path, pid: str, lesion: np.ndarray, brain: np.ndarray, affine: np.ndarray
) -> None:
    d = root / pid
    d.mkdir(parents=True)
    nib.save(nib.Nifti1Image(lesion.astype(np.int16), affine), d / "consensus_gt.nii.gz")
    nib.save(nib.Nifti1Image(brain.astype(np.int16), affine), d / "brainmask.nii.gz")


def test_build_converts_lps_anisotropic_to_las_1mm(tmp_path: Path) -> None:
    # LPS array axes like the real masks: axis0 -> Left, axis1 -> Posterior, axis2 -> Superior.
    zooms = (0.8, 0.5, 0.5)
    shape = (100, 160, 160)  # 80 x 80 x 80 mm
    affine = np.diag([-zooms[0], -zooms[1], zooms[2], 1.0])
    affine[:3, 3] = [40.0, 40.0, -40.0]
    brain = np.zeros(shape, dtype=bool)
    brain[5:95, 10:150, 10:150] = True
    lesion = np.zeros(shape, dtype=bool)
    # A bar far Left, Anterior (low LPS axis1), Superior: 20 mm along A-P, 5 mm otherwise.
    lesion[80:86, 20:60, 130:140] = True
    # A 10 mm cube Right, Posterior, Inferior.
    lesion[15:28, 125:145, 20:40] = True
    # One native voxel (0.2 mm³) is below min_voxels after resampling and must vanish.
    lesion[50, 80, 80] = True
    _write_patient(tmp_path, "patientA", lesion, brain, affine)
    # Excluded patients are never opened: an empty folder would otherwise raise.
    (tmp_path / "patient07").mkdir()
    (tmp_path / "patient07" / "consensus_gt.nii.gz").touch()

    bank = build_lesion_bank(tmp_path)

    assert len(bank) == 2
    assert set(bank.patient_of) == {"patientA"}
    assert set(bank.excluded) == DEFAULT_EXCLUDE
    vols = sorted(int(s.sum()) for s in bank.shapes)
    # Native volumes: 6*40*10*0.2 = 480 mm³ bar, 13*20*20*0.2 = 1040 mm³ cube.
    assert vols[0] == pytest.approx(480, rel=0.2)
    assert vols[1] == pytest.approx(1040, rel=0.2)
    for s in bank.shapes:
        # Tight bounding box: every face of the crop touches the lesion.
        for ax in range(3):
            proj = np.any(s, axis=tuple(a for a in range(3) if a != ax))
            assert proj[0] and proj[-1]

    bar = int(np.argmin([s.sum() for s in bank.shapes]))
    cube = 1 - bar
    # The bar is 20 mm along A-P (LAS axis 1) and 5 mm along the others.
    assert np.argmax(bank.shapes[bar].shape) == 1
    assert bank.shapes[bar].shape[1] == pytest.approx(20, abs=2)
    # Relative positions in LAS order: Left/Anterior/Superior are high values.
    # Brain box (voxel centres) LPS axis0 5..94, axis1 10..149, axis2 10..149.
    exp_bar = [(82.5 - 5) / 89, (149 - 39.5) / 139, (134.5 - 10) / 139]
    exp_cube = [(21 - 5) / 89, (149 - 134.5) / 139, (29.5 - 10) / 139]
    np.testing.assert_allclose(bank.rel_centroids[bar], exp_bar, atol=0.03)
    np.testing.assert_allclose(bank.rel_centroids[cube], exp_cube, atol=0.03)


def test_build_rejects_bad_limits(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        build_lesion_bank(tmp_path, min_voxels=10, max_voxels=5)


def _random_bank(rng: np.random.Generator, n: int) -> LesionBank:
    shapes = []
    for _ in range(n):
        s = rng.random(tuple(int(d) for d in rng.integers(1, 7, 3))) < 0.6
        s.flat[0] = True
        shapes.append(s)
    return LesionBank(
        shapes=shapes,
        rel_centroids=rng.random((n, 3)),
        patient_of=[f"patient{i % 3:02d}" for i in range(n)],
        excluded=("patient07",),
    )


def _assert_banks_equal(a: LesionBank, b: LesionBank) -> None:
    assert len(a) == len(b)
    for sa, sb in zip(a.shapes, b.shapes, strict=True):
        assert sa.dtype == sb.dtype == np.bool_
        assert sa.shape == sb.shape
        assert np.array_equal(sa, sb)
    assert a.rel_centroids.dtype == b.rel_centroids.dtype
    assert np.array_equal(a.rel_centroids, b.rel_centroids)
    assert a.patient_of == b.patient_of
    assert a.excluded == b.excluded


@pytest.mark.parametrize("n", [0, 1, 17])
def test_save_load_roundtrip_synthetic(tmp_path: Path, n: int) -> None:
    bank = _random_bank(np.random.default_rng(n), n)
    path = tmp_path / "cache" / "bank.npz"
    bank.save(path)
    assert path.is_file()
    assert not list(path.parent.glob("*.tmp"))  # atomic write leaves no debris
    _assert_banks_equal(bank, LesionBank.load(path))


def test_bank_validates_consistency() -> None:
    with pytest.raises(ValueError):
        LesionBank(
            shapes=[np.ones((2, 2, 2), bool)], rel_centroids=np.zeros((2, 3)), patient_of=["a"]
        )
    with pytest.raises(ValueError):
        LesionBank(shapes=[np.ones((2, 2), bool)], rel_centroids=np.zeros((1, 3)), patient_of=["a"])


def _phantom() -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Spherical 'brain' with a bright-on-T1 white-matter core and mild noise."""
    rng = np.random.default_rng(123)
    grid = np.indices((64, 64, 64)).astype(np.float32) - 31.5
    r = np.sqrt((grid**2).sum(axis=0))
    brain = r < 28
    wm = r < 18
    t1 = np.where(wm, 400.0, 250.0) * brain
    flair = np.where(wm, 80.0, 100.0) * brain
    noise = 1 + 0.03 * rng.standard_normal(brain.shape)
    images = {
        "t1": (t1 * noise).astype(np.float32),
        "flair": (flair * noise).astype(np.float32),
    }
    return images, brain, np.zeros(brain.shape, dtype=np.uint8)


def _cube_bank() -> LesionBank:
    # Shapes that do not fill their bounding box, so writes outside the shape are caught.
    notched = np.ones((3, 3, 3), bool)
    notched[0, 0, :] = False
    diagonal = np.eye(4, dtype=bool)[:, :, None] | np.eye(4, dtype=bool)[:, None, :]
    return LesionBank(
        shapes=[notched, diagonal],
        rel_centroids=np.full((2, 3), 0.5),
        patient_of=["x", "y"],
    )


def test_paste_phantom_contrast_and_locality() -> None:
    images, brain, mask = _phantom()
    before = {k: v.copy() for k, v in images.items()}
    out, new_mask = paste_lesions(
        images, brain, mask, _cube_bank(), np.random.default_rng(0), 4, DEFAULT_CONTRAST
    )
    assert new_mask.dtype == mask.dtype
    added = new_mask.astype(bool)
    assert added.sum() >= 24  # at least one lesion fits in the phantom's white matter
    for k in images:
        assert np.array_equal(images[k], before[k])  # inputs untouched
        assert out[k].dtype == images[k].dtype
        assert np.array_equal(out[k][~added], images[k][~added])
    # Core voxels reach the drawn contrast range (edge voxels are blended).
    assert np.max(out["flair"][added]) > 80 * DEFAULT_CONTRAST["flair"][0] * 0.9
    assert np.min(out["t1"][added]) < 400 * DEFAULT_CONTRAST["t1"][1] * 1.1


def test_paste_errors_and_noop() -> None:
    images, brain, mask = _phantom()
    with pytest.raises(ValueError, match="contrast"):
        paste_lesions(
            images, brain, mask, _cube_bank(), np.random.default_rng(0), 1, {"t1": (0.5, 0.6)}
        )
    empty = LesionBank(shapes=[], rel_centroids=np.zeros((0, 3)), patient_of=[])
    with pytest.raises(ValueError, match="empty"):
        paste_lesions(images, brain, mask, empty, np.random.default_rng(0), 1)
    with pytest.raises(ValueError, match="shape"):
        paste_lesions(images, brain[:-1], mask, _cube_bank(), np.random.default_rng(0), 1)
    out, new_mask = paste_lesions(images, brain, mask, empty, np.random.default_rng(0), 0)
    assert np.array_equal(new_mask, mask)
    assert all(np.array_equal(out[k], images[k]) for k in images)
    assert out["t1"] is not images["t1"]


def test_white_matter_proxy_requires_t1_or_flair() -> None:
    images, brain, _ = _phantom()
    with pytest.raises(ValueError):
        white_matter_proxy({"t2": images["t1"]}, brain)
    wm = white_matter_proxy(images, brain)
    assert wm.any()
    # Eroded by ~4 voxels: nothing within 3 voxels of the brain edge.
    assert not np.any(wm & ~ndimage.binary_erosion(brain, iterations=3))


# --------------------------------------------------------------------------------------
# Real data (../shared/data)
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def masks_root(shared_data: Path) -> Path:
    return shared_data / "open-ms" / "cross_sectional_masks_only"


@pytest.fixture(scope="module")
def real_bank(masks_root: Path) -> LesionBank:
    return build_lesion_bank(masks_root, patients=BANK_PATIENTS)


@pytest.fixture(scope="module")
def patient07(shared_data: Path) -> dict[str, np.ndarray]:
    d = shared_data / "open-ms" / "cross_sectional" / "patient07"
    return {
        "flair": _load(d / "FLAIR.nii.gz").get_fdata(dtype=np.float32),
        "t1": _load(d / "T1.nii.gz").get_fdata(dtype=np.float32),
        "mask": np.asarray(_load(d / "lesion_mask.nii.gz").dataobj),
    }


@pytest.mark.shared_data
def test_real_bank_excludes_training_patients(real_bank: LesionBank) -> None:
    assert "patient07" not in real_bank.patient_of
    assert set(real_bank.patient_of) == {"patient01", "patient02"}
    assert set(real_bank.excluded) == DEFAULT_EXCLUDE


@pytest.mark.shared_data
@pytest.mark.parametrize("pid", ["patient01", "patient02"])
def test_real_bank_volumes_plausible(real_bank: LesionBank, masks_root: Path, pid: str) -> None:
    img = _load(masks_root / pid / "consensus_gt.nii.gz")
    native = np.asarray(img.dataobj) > 0
    voxel_mm3 = float(np.prod(img.header.get_zooms()[:3]))
    # Labelling only the lesions' bounding box keeps this fast on the 512² x 192 grid.
    box = ndimage.find_objects(native.astype(np.int8))[0]
    labels, _ = label_lesions(native[box])
    comp_mm3 = np.bincount(labels.ravel())[1:] * voxel_mm3
    # Bank voxels are 1 mm³, so the bank's size limits are limits in mm³.
    kept = comp_mm3[(comp_mm3 >= 3) & (comp_mm3 <= 20000)]
    native_ml = kept.sum() / 1000.0

    sizes = [
        int(s.sum())
        for s, p in zip(real_bank.shapes, real_bank.patient_of, strict=True)
        if p == pid
    ]
    bank_ml = sum(sizes) / 1000.0
    assert native_ml > 0
    assert 1 / 1.3 < bank_ml / native_ml < 1.3, (pid, bank_ml, native_ml)
    assert 1 / 1.5 < len(sizes) / len(kept) < 1.5, (pid, len(sizes), len(kept))
    assert min(sizes) >= 3 and max(sizes) <= 20000


@pytest.mark.shared_data
def test_real_bank_centroids_inside_brain_box(real_bank: LesionBank) -> None:
    rc = real_bank.rel_centroids
    assert rc.shape == (len(real_bank), 3)
    assert np.all((rc >= 0) & (rc <= 1))
    # White-matter lesions cluster around the ventricles, i.e. centrally, never on the
    # bounding box faces; a wrong axis flip or scale would push the mean off-centre.
    assert np.all(np.abs(rc.mean(axis=0) - 0.5) < 0.15)


@pytest.mark.shared_data
def test_real_bank_roundtrip(real_bank: LesionBank, tmp_path: Path) -> None:
    path = tmp_path / "bank.npz"
    real_bank.save(path)
    _assert_banks_equal(real_bank, LesionBank.load(path))


def _wm_median(img: np.ndarray, t1: np.ndarray, brain: np.ndarray) -> float:
    """Independent NAWM estimate: deep brain (L1 erosion by 4) with T1 above its median."""
    deep = ndimage.binary_erosion(brain, iterations=4)
    return float(np.median(img[deep & (t1 > np.median(t1[brain]))]))


@pytest.mark.shared_data
def test_paste_on_real_image(real_bank: LesionBank, patient07: dict[str, np.ndarray]) -> None:
    flair, t1, mask = patient07["flair"], patient07["t1"], patient07["mask"]
    brain = flair > 0  # skull-stripped: background is exactly 0
    images = {"flair": flair, "t1": t1}
    flair_before = flair.copy()

    out, new_mask = paste_lesions(
        images, brain, mask, real_bank, np.random.default_rng(7), 12, DEFAULT_CONTRAST
    )

    assert np.array_equal(flair, flair_before)
    old = mask.astype(bool)
    new = new_mask.astype(bool)
    assert np.all(new[old])  # union with the existing lesions
    added = new & ~old
    assert added.sum() > 0
    assert not np.any(added & ~brain)
    assert label_lesions(added)[1] >= 3

    flair_wm = _wm_median(flair, t1, brain)
    t1_wm = _wm_median(t1, t1, brain)
    assert out["flair"][added].mean() > flair_wm
    assert out["flair"][added].mean() > flair[added].mean()
    assert out["t1"][added].mean() < t1[added].mean()
    assert out["t1"][added].mean() < t1_wm
    for k in images:
        assert np.array_equal(out[k][~added], images[k][~added])

    # Same seed, same result; another seed, another result.
    out2, new_mask2 = paste_lesions(
        images, brain, mask, real_bank, np.random.default_rng(7), 12, DEFAULT_CONTRAST
    )
    assert np.array_equal(new_mask, new_mask2)
    assert all(np.array_equal(out[k], out2[k]) for k in images)
    _, new_mask3 = paste_lesions(
        images, brain, mask, real_bank, np.random.default_rng(8), 12, DEFAULT_CONTRAST
    )
    assert not np.array_equal(new_mask, new_mask3)


@pytest.mark.shared_data
def test_paste_flair_only_fallback(real_bank: LesionBank, patient07: dict[str, np.ndarray]) -> None:
    flair, mask = patient07["flair"], patient07["mask"]
    brain = flair > 0
    out, new_mask = paste_lesions(
        {"flair": flair},
        brain,
        mask,
        real_bank,
        np.random.default_rng(1),
        8,
        random_flips=True,
        random_permutations=True,
    )
    added = new_mask.astype(bool) & ~mask.astype(bool)
    assert added.sum() > 0
    assert not np.any(added & ~brain)
    assert out["flair"][added].mean() > flair[added].mean()
    assert np.array_equal(out["flair"][~added], flair[~added])
