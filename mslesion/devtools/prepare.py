"""Annotated datasets in any geometry → training cases on the model grid, by serving's own code.

A dataset is a folder of cases, each ``<case>/FLAIR.nii.gz`` with optional ``T1``/``T2`` and a
``lesion_mask`` on the FLAIR's voxel grid (the layout of open-ms and insights-ms), in the
scanner's native geometry: skull on or off, any slice thickness. Each case goes through
:func:`mslesion.services.imaging.preprocess.preprocess` — the exact function a DICOM study goes
through — so a model trained on prepared cases sees what serving will feed it. Written per
case (the layout ``mslesion train`` reads):

* ``FLAIR.nii.gz``, ``T1.nii.gz``, ``T2.nii.gz``: the preprocessed series on the model grid;
* ``wm_prior.nii.gz``: the registered template white-matter probability;
* ``lesion_mask.nii.gz``: the native mask carried onto the model grid (linear, ≥ 0.5, in brain);
* ``model_to_flair.tfm`` and ``native.json``: what maps a prediction back onto the native FLAIR
  grid, where it is scored against the untouched native mask (:func:`to_native`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from mslesion.models.training.dataset import MASK_STEMS, MODALITY_STEMS, find_nifti
from mslesion.services.errors import InputError
from mslesion.services.imaging import registration, template
from mslesion.services.imaging.preprocess import (
    MODEL_GRID_INTERPOLATOR,
    NativeGrid,
    preprocess,
    read_nifti_as_sitk,
)
from mslesion.services.imaging.units import voxel_volume_ml_from_spacing

log = logging.getLogger(__name__)

OUTPUT_NAMES = {"flair": "FLAIR.nii.gz", "t1": "T1.nii.gz", "t2": "T2.nii.gz"}
TRANSFORM_NAME = "model_to_flair.tfm"
NATIVE_NAME = "native.json"
WM_PRIOR_NAME = "wm_prior.nii.gz"
MASK_NAME = "lesion_mask.nii.gz"
# What decides the prepared images besides the source: a case prepared otherwise is redone.
PREPARATION = {"model_grid_interpolator": int(MODEL_GRID_INTERPOLATOR)}


@dataclass(frozen=True)
class PreparedCase:
    """One case on the model grid, with the way back to its native FLAIR and mask."""

    name: str
    folder: Path
    modalities: tuple[str, ...]
    native_flair: Path
    native_mask: Path

    @classmethod
    def load(cls, folder: Path) -> PreparedCase:
        """A case written by :func:`prepare_case`; :class:`InputError` if it is incomplete."""
        meta_path = folder / NATIVE_NAME
        if not meta_path.is_file():
            raise InputError(f"{folder}: not a prepared case (no {NATIVE_NAME})")
        meta = json.loads(meta_path.read_text())
        return cls(
            name=folder.name,
            folder=folder,
            modalities=tuple(meta["modalities"]),
            native_flair=Path(meta["native_flair"]),
            native_mask=Path(meta["native_mask"]),
        )


def _save_model_array(array: np.ndarray, path: Path, dtype: type) -> None:
    image = nib.Nifti1Image(np.asarray(array, dtype=dtype), template.model_affine())
    image.set_qform(template.model_affine(), code=1)
    image.set_sform(template.model_affine(), code=1)
    nib.save(image, str(path))


def mask_onto_model_grid(mask: sitk.Image, model_to_flair: sitk.Transform) -> np.ndarray:
    """A native 0/1 mask on the model grid: linear interpolation of the mask, then ≥ 0.5."""
    fraction = sitk.Resample(
        sitk.Cast(mask > 0, sitk.sitkFloat32),
        template.model_grid(),
        model_to_flair,
        sitk.sitkLinear,
        0.0,
        sitk.sitkFloat32,
    )
    return np.asarray(template.to_model_array(fraction) >= 0.5)


def prepare_case(case_dir: Path, out_dir: Path) -> PreparedCase:
    """Preprocess one native case like a study and write it as a training case."""
    paths = {m: find_nifti(case_dir, stems) for m, stems in MODALITY_STEMS.items()}
    mask_path = find_nifti(case_dir, MASK_STEMS)
    flair_path = paths["flair"]
    if flair_path is None or mask_path is None:
        raise InputError(f"{case_dir}: a case needs FLAIR and lesion_mask NIfTI files")
    images = {m: read_nifti_as_sitk(p) for m, p in paths.items() if p is not None}
    pre = preprocess(images["flair"], images.get("t1"), images.get("t2"))
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, array in pre.images.items():
        _save_model_array(array, out_dir / OUTPUT_NAMES[name], np.float32)
    _save_model_array(pre.wm_prior, out_dir / WM_PRIOR_NAME, np.float32)
    truth = mask_onto_model_grid(read_nifti_as_sitk(mask_path), pre.transforms.model_to_flair)
    _save_model_array(truth & pre.brain, out_dir / MASK_NAME, np.uint8)
    sitk.WriteTransform(pre.transforms.model_to_flair, str(out_dir / TRANSFORM_NAME))
    meta = {
        "modalities": list(pre.images),
        "native_flair": str(flair_path.resolve()),
        "native_mask": str(mask_path.resolve()),
        "preparation": PREPARATION,
        "coverage": pre.coverage,
        "timings_s": {k: round(v, 2) for k, v in pre.timings_s.items()},
    }
    (out_dir / NATIVE_NAME).write_text(json.dumps(meta, indent=2) + "\n")
    return PreparedCase.load(out_dir)


def prepare_dataset(source: Path, target: Path) -> list[PreparedCase]:
    """Prepare every case folder of ``source`` into ``target`` (cases done before are kept)."""
    if not source.is_dir():
        raise InputError(f"{source}: no such dataset folder")
    cases = []
    for case_dir in sorted(p for p in source.iterdir() if p.is_dir()):
        out = target / case_dir.name
        if _prepared_alike(out):
            cases.append(PreparedCase.load(out))
            continue
        log.info("preparing %s", case_dir.name)
        cases.append(prepare_case(case_dir, out))
    if not cases:
        raise InputError(f"{source}: no case folders")
    return cases


def _prepared_alike(folder: Path) -> bool:
    """True when ``folder`` holds a case prepared the way :func:`prepare_case` prepares now."""
    meta = folder / NATIVE_NAME
    return meta.is_file() and json.loads(meta.read_text()).get("preparation") == PREPARATION


def load_prepared(folder: Path) -> list[PreparedCase]:
    """Every prepared case under ``folder``, by name."""
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder of prepared cases")
    cases = [PreparedCase.load(p) for p in sorted(folder.iterdir()) if (p / NATIVE_NAME).is_file()]
    if not cases:
        raise InputError(f"{folder}: no prepared cases (run `mslesion prepare` first)")
    return cases


def to_native(case: PreparedCase, array: np.ndarray) -> np.ndarray:
    """A model-grid float map (x, y, z) on the case's native FLAIR grid, as (z, y, x) array."""
    transform = sitk.ReadTransform(str(case.folder / TRANSFORM_NAME))
    grid = NativeGrid.of(sitk.ReadImage(str(case.native_flair)))
    image = template.from_model_array(np.asarray(array, dtype=np.float32))
    native = grid.resample(
        image, registration.inverse(transform), sitk.sitkLinear, sitk.sitkFloat32
    )
    return sitk.GetArrayFromImage(native)


def native_truth(case: PreparedCase) -> tuple[np.ndarray, float]:
    """The native lesion mask as a bool (z, y, x) array and the native voxel volume in ml."""
    mask = sitk.ReadImage(str(case.native_mask))
    return sitk.GetArrayFromImage(mask) > 0, voxel_volume_ml_from_spacing(mask.GetSpacing())
