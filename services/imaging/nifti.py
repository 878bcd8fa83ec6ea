"""NIfTI reading and writing that keeps the input's exact grid and affine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from mslesion.services.errors import InputError
from mslesion.services.imaging.units import voxel_volume_ml_from_affine

AFFINE_ATOL = 1e-4


@dataclass(frozen=True)
class Volume:
    """A 3D image with the header it came from (kept so outputs share the exact grid)."""

    data: np.ndarray
    affine: np.ndarray
    header: nib.Nifti1Header
    path: Path | None = None

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along the three array axes."""
        zooms = self.header.get_zooms()[:3]
        return (float(zooms[0]), float(zooms[1]), float(zooms[2]))

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres, from the affine (see :mod:`.units`)."""
        return voxel_volume_ml_from_affine(self.affine)


def load_volume(path: Path, dtype: type = np.float32) -> Volume:
    """Read a 3D NIfTI file; raise :class:`InputError` if missing, unreadable or not 3D."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj).astype(dtype, copy=False)  # type: ignore[attr-defined]
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise InputError(f"{path}: not a readable NIfTI image ({exc})") from exc
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(f"{path}: expected a 3D image, got shape {data.shape}")
    header = img.header.copy()
    if not isinstance(header, nib.Nifti1Header):  # e.g. Analyze: convert so qform/sform exist
        header = nib.Nifti1Header.from_header(header)
    return Volume(data=data, affine=img.affine.copy(), header=header, path=path)  # type: ignore[attr-defined]


def check_same_grid(volumes: dict[str, Volume]) -> None:
    """Raise :class:`InputError` naming the first volume whose shape or affine differs."""
    items = list(volumes.items())
    ref_name, ref = items[0]
    for name, vol in items[1:]:
        if vol.data.shape != ref.data.shape:
            raise InputError(
                f"{name} has shape {vol.data.shape} but {ref_name} has {ref.data.shape}: "
                "images must be co-registered on one grid"
            )
        if not np.allclose(vol.affine, ref.affine, atol=AFFINE_ATOL):
            raise InputError(
                f"{name} and {ref_name} have different affines (voxel-to-world transforms): "
                "images must be co-registered on one grid"
            )


def save_like(reference: Volume, data: np.ndarray, path: Path, dtype: type) -> Path:
    """Write ``data`` on ``reference``'s exact grid (affine, qform/sform codes, zooms)."""
    if data.shape != reference.data.shape:
        raise ValueError(f"array shape {data.shape} differs from reference {reference.data.shape}")
    header = reference.header.copy()
    header.set_data_dtype(dtype)
    img = nib.Nifti1Image(data.astype(dtype), reference.affine, header)
    img.set_qform(reference.header.get_qform(), code=int(reference.header["qform_code"]))
    img.set_sform(reference.header.get_sform(), code=int(reference.header["sform_code"]))
    if np.issubdtype(dtype, np.floating):
        img.header.set_slope_inter(1.0, 0.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path
