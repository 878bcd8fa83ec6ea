"""Training subjects: one folder per subject with FLAIR/T1/T2 and a lesion mask (NIfTI)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mslesion.services.errors import InputError
from mslesion.services.imaging.nifti import Volume, check_same_grid, load_volume
from mslesion.services.segmentation.inputs import ContextChannel, Standardisation, prepare_stack

# File stems accepted per modality (case-insensitive, .nii or .nii.gz).
MODALITY_STEMS: dict[str, tuple[str, ...]] = {
    "flair": ("flair",),
    "t1": ("t1", "t1w"),
    "t2": ("t2", "t2w"),
}
MASK_STEMS = ("lesion_mask", "mask", "consensus_gt", "lesions")
WM_PRIOR_STEMS = ("wm_prior",)  # written by `mslesion prepare`
SPACING_TOL_MM = 1e-3


@dataclass
class Subject:
    """One annotated subject: raw images (modality → array), brain and lesion masks."""

    name: str
    images: dict[str, np.ndarray]
    mask: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    wm_prior: np.ndarray | None = None  # registered template white matter, when prepared

    def normalised(
        self,
        modalities: list[str],
        standardisation: Standardisation = Standardisation.ZSCORE,
        context: tuple[ContextChannel, ...] = (),
        smoothing: float = 0.0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(C, X, Y, Z) model input and brain mask, exactly as serving prepares them."""
        return prepare_stack(
            self.images,
            modalities,
            standardisation=standardisation,
            wm_prior=self.wm_prior,
            context=context,
            smoothing=smoothing,
        )


def find_nifti(folder: Path, stems: tuple[str, ...]) -> Path | None:
    """The first ``<stem>.nii.gz`` / ``<stem>.nii`` in ``folder`` (case-insensitive)."""
    by_stem = {}
    for p in folder.iterdir():
        name = p.name.lower()
        for ext in (".nii.gz", ".nii"):
            if name.endswith(ext):
                by_stem[name[: -len(ext)]] = p
    return next((by_stem[s] for s in stems if s in by_stem), None)


def load_subject(folder: Path, modalities: list[str]) -> Subject:
    """Load and check one subject folder; :class:`InputError` names what is wrong."""
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    wanted = {m: MODALITY_STEMS.get(m, (m,)) for m in modalities}
    files: dict[str, Path | None] = {m: find_nifti(folder, stems) for m, stems in wanted.items()}
    files["mask"] = find_nifti(folder, MASK_STEMS)
    prior_file = find_nifti(folder, WM_PRIOR_STEMS)
    missing = [k for k, v in files.items() if v is None]
    if missing:
        present = sorted(p.name for p in folder.iterdir())
        raise InputError(
            f"{folder.name}: missing {', '.join(missing)} "
            f"(expected e.g. FLAIR.nii.gz, T1.nii.gz, T2.nii.gz, lesion_mask.nii.gz; "
            f"found {', '.join(present) or 'nothing'})"
        )
    volumes: dict[str, Volume] = {k: load_volume(v) for k, v in files.items() if v is not None}
    if prior_file is not None:
        volumes["wm_prior"] = load_volume(prior_file)
    try:
        check_same_grid(volumes)
    except InputError as exc:
        raise InputError(f"{folder.name}: {exc}") from exc
    mask = volumes.pop("mask").data > 0
    prior = volumes.pop("wm_prior").data if "wm_prior" in volumes else None
    if not mask.any():
        raise InputError(f"{folder.name}: the lesion mask is empty (nothing to learn from)")
    ref = volumes[modalities[0]]
    return Subject(
        name=folder.name,
        images={k: v.data for k, v in volumes.items()},
        mask=mask,
        affine=ref.affine,
        spacing=ref.spacing,
        wm_prior=prior,
    )


def load_dataset(
    data_dir: Path, modalities: list[str], only: list[str] | None = None
) -> list[Subject]:
    """Every subject folder under ``data_dir`` (sorted); all must share one voxel spacing."""
    if not data_dir.is_dir():
        raise InputError(f"{data_dir}: no such data folder")
    folders = sorted(p for p in data_dir.iterdir() if p.is_dir())
    if only is not None:
        folders = [f for f in folders if f.name in only]
    if not folders:
        raise InputError(f"{data_dir}: no subject folders (one folder per subject expected)")
    return load_subjects(folders, modalities)


def load_subjects(folders: list[Path], modalities: list[str]) -> list[Subject]:
    """The given subject folders (any parent); all must share one voxel spacing."""
    if not folders:
        raise InputError("no subject folders given")
    subjects = [load_subject(f, modalities) for f in folders]
    ref = subjects[0]
    for s in subjects[1:]:
        if not np.allclose(s.spacing, ref.spacing, atol=SPACING_TOL_MM):
            raise InputError(
                f"{s.name} has voxel spacing {s.spacing} mm but {ref.name} has {ref.spacing} mm: "
                "resample all subjects to one spacing first"
            )
    return subjects
