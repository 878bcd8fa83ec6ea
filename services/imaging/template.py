"""The MNI template shipped with nilearn and the model grid (FSL MNI152 1 mm).

Two spaces meet here:

* the **template**: ICBM152 2009a nonlinear symmetric T1 (skull-stripped), its brain mask
  and its white-matter probability map, read from the files nilearn ships inside its package
  (no network, nilearn itself is never imported);
* the **model grid**: the FSL MNI152 1 mm grid of the training data, 182×218×182 voxels with
  NIfTI (RAS) affine :data:`MODEL_AFFINE`, LAS array order.

Both are MNI coordinates, so the template lives directly in the model grid's physical space
(the two MNI152 generations differ by a few mm, far less than the anatomical variation the
model saw: its training brains were placed rigidly, at native size). SimpleITK works in LPS,
NIfTI in RAS: :func:`ras_to_lps_geometry` is the one place that converts. Everything is
loaded lazily and cached; nothing happens at import time.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from mslesion.services.errors import ModelError

MODEL_SHAPE: tuple[int, int, int] = (182, 218, 182)
# NIfTI sform/qform of the training data (FSL MNI152_T1_1mm): RAS millimetres, LAS voxel order.
MODEL_AFFINE: np.ndarray = np.array(
    [[-1.0, 0.0, 0.0, 90.0], [0.0, 1.0, 0.0, -126.0], [0.0, 0.0, 1.0, -72.0], [0.0, 0.0, 0.0, 1.0]]
)
MODEL_AFFINE.setflags(write=False)

T1_FILE = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
# Tissue probability map of the same template (same grid as the T1), stored as uint8 0..255.
WM_FILE = "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"
GM_FILE = "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz"

# nilearn's own ``load_mni152_brain_mask`` threshold on the T1 rescaled to [0, 1]: it keeps the
# brain with its CSF, which is what a clinical brain mask (and our reference masks) contain.
BRAIN_MASK_T1_THRESHOLD = 0.2

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def model_affine() -> np.ndarray:
    """A writable copy of the model grid's NIfTI (RAS) affine."""
    return np.array(MODEL_AFFINE)


def ras_to_lps_geometry(
    affine: np.ndarray,
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """(origin, spacing, direction) in ITK's LPS convention of a NIfTI RAS voxel-to-world affine."""
    lps = _RAS_TO_LPS @ np.asarray(affine, dtype=np.float64)[:3]
    spacing = np.linalg.norm(lps[:, :3], axis=0)
    direction = lps[:, :3] / spacing
    return tuple(lps[:, 3].tolist()), tuple(spacing.tolist()), tuple(direction.ravel().tolist())


def model_grid() -> sitk.Image:
    """An empty (uint8, all 0) image on the model grid: the reference for resampling onto it."""
    return sitk.Image(_model_grid())  # shallow copy: callers may change it without harm


@lru_cache(maxsize=1)
def _model_grid() -> sitk.Image:
    image = sitk.Image([int(n) for n in MODEL_SHAPE], sitk.sitkUInt8)
    origin, spacing, direction = ras_to_lps_geometry(MODEL_AFFINE)
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    return image


def to_model_array(image: sitk.Image) -> np.ndarray:
    """Voxels of an image on the model grid in nibabel's (x, y, z) = LAS order.

    SimpleITK arrays are (z, y, x); on this grid ITK's voxel index (i, j, k) is the same voxel
    as nibabel's, so a transpose is the whole conversion.
    """
    if tuple(image.GetSize()) != MODEL_SHAPE:
        raise ValueError(f"image of size {image.GetSize()} is not on the model grid {MODEL_SHAPE}")
    return np.ascontiguousarray(sitk.GetArrayFromImage(image).transpose(2, 1, 0))


def from_model_array(array: np.ndarray) -> sitk.Image:
    """Inverse of :func:`to_model_array`: an (x, y, z) model-grid array as a SimpleITK image."""
    if tuple(array.shape) != MODEL_SHAPE:
        raise ValueError(f"array of shape {array.shape} is not on the model grid {MODEL_SHAPE}")
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(array).transpose(2, 1, 0)))
    image.CopyInformation(_model_grid())
    return image


def template_dir() -> Path:
    """Folder of the ICBM152 files inside the installed nilearn package (not imported)."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("nilearn is not installed: it ships the ICBM152 template mslesion needs")
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    if not (folder / T1_FILE).is_file():
        raise ModelError(f"{folder / T1_FILE}: ICBM152 template missing from the nilearn package")
    return folder


def template_t1() -> sitk.Image:
    """ICBM152 2009a T1 template (skull-stripped), float32 rescaled to [0, 1], LPS."""
    return sitk.Image(_template_t1())


def template_brain_mask() -> sitk.Image:
    """Brain mask (uint8 0/1) of the template: its T1 above :data:`BRAIN_MASK_T1_THRESHOLD`."""
    return sitk.Image(_template_brain_mask())


def template_wm_probability() -> sitk.Image:
    """ICBM152 2009a white-matter probability map, float32 in [0, 1], LPS, on the T1's grid.

    It is an average of healthy brains: MS lesions are absent from it, so lesioned white
    matter keeps its full prior here even where a subject's own segmentation would not.
    """
    return sitk.Image(_template_wm())


def template_gm_probability() -> sitk.Image:
    """ICBM152 2009a grey-matter probability map (cortex and deep nuclei), like the WM map."""
    return sitk.Image(_template_gm())


def template_brain_centre() -> tuple[float, float, float]:
    """Centroid (LPS mm) of :func:`template_brain_mask`: where the model grid's brain centre is."""
    return _template_brain_centre()


@lru_cache(maxsize=1)
def _template_t1() -> sitk.Image:
    return _read_unit(T1_FILE)


@lru_cache(maxsize=1)
def _template_wm() -> sitk.Image:
    # The map peaks at 255 (probability 1) deep in the white matter, so dividing by the peak
    # (as nilearn's own loader does) gives probabilities.
    return _read_unit(WM_FILE)


@lru_cache(maxsize=1)
def _template_gm() -> sitk.Image:
    return _read_unit(GM_FILE)


@lru_cache(maxsize=1)
def _template_brain_mask() -> sitk.Image:
    mask = sitk.Cast(_template_t1() > BRAIN_MASK_T1_THRESHOLD, sitk.sitkUInt8)
    # The 0.2 threshold leaves a few dark pockets (ventricle tips); a brain mask has no holes.
    return sitk.BinaryFillhole(mask, fullyConnected=False, foregroundValue=1)


@lru_cache(maxsize=1)
def _template_brain_centre() -> tuple[float, float, float]:
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(_template_brain_mask())
    x, y, z = stats.GetCentroid(1)
    return (float(x), float(y), float(z))


def _read_unit(name: str) -> sitk.Image:
    """Read a shipped uint8 template file as float32 scaled to [0, 1] (as nilearn does)."""
    path = template_dir() / name
    if not path.is_file():  # template_dir() only vouches for the T1
        raise ModelError(f"{path}: ICBM152 template file missing from the nilearn package")
    image = sitk.ReadImage(str(path), sitk.sitkFloat32)
    peak = float(sitk.GetArrayViewFromImage(image).max())
    if not peak > 0:
        raise ModelError(f"{name}: template image is empty")
    return image / peak
