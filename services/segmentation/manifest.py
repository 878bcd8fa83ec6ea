"""The model manifest: what a model folder holds and how its inputs must be prepared.

Serving refuses a folder whose ONNX files do not match the sha256 in its manifest.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from mslesion.services.errors import ModelError
from mslesion.services.segmentation.inputs import ContextChannel, Standardisation

MANIFEST_NAME = "manifest.json"


class NetRole(StrEnum):
    """The four ONNX files of a cascade model."""

    NET1_DENSE = "net1_dense"
    NET2_DENSE = "net2_dense"
    NET1_PATCH = "net1_patch"
    NET2_PATCH = "net2_patch"


class ModelFile(BaseModel):
    """One file of the model folder and its checksum."""

    path: str
    sha256: str


class Normalisation(BaseModel):
    """How each modality is standardised before inference (identical to training)."""

    method: Standardisation = Standardisation.ZSCORE
    region: str = "brain: voxels != 0 in the FLAIR (skull-stripped input)"
    smoothing_voxels: float = Field(
        0.0,
        ge=0.0,
        description="σ (model-grid voxels) of the Gaussian applied to every image inside the "
        "brain before standardisation (0: none)",
    )


class Thresholds(BaseModel):
    """The cascade rule and post-processing constants."""

    candidate_flair_z: float = Field(
        0.5, description="net 1 scores brain voxels whose standardised FLAIR exceeds this"
    )
    net1: float = Field(0.5, description="net 2 re-scores voxels where net 1 exceeds this")
    t_bin: float = Field(0.5, ge=0.0, le=1.0, description="final probability threshold")
    l_min: int = Field(10, ge=0, description="components smaller than this (voxels) are removed")


class Manifest(BaseModel):
    """Everything serving needs to know about a model folder (manifest.json)."""

    name: str
    version: str
    created: str
    modalities: list[str] = Field(min_length=1, description="input channel order, FLAIR first")
    spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)
    patch_size: int = 11
    normalisation: Normalisation = Normalisation()
    context: list[ContextChannel] = Field(
        default_factory=list, description="channels after the modalities (where a voxel lies)"
    )
    thresholds: Thresholds = Thresholds()
    files: dict[NetRole, ModelFile]
    training: dict[str, object] = Field(default_factory=dict)
    metrics: dict[str, object] = Field(default_factory=dict)
    intended_use: str = "Research use only. Not a medical device."

    @property
    def channels(self) -> int:
        """Input channels of each net: the modalities, then the context channels."""
        return len(self.modalities) + len(self.context)

    @property
    def needs_wm_prior(self) -> bool:
        """True when the model's inputs need the registered template white-matter prior."""
        return self.normalisation.method is Standardisation.WM_PEAK or bool(self.context)

    def file_path(self, folder: Path, role: NetRole) -> Path:
        """Absolute path of one ONNX file; raise :class:`ModelError` if the manifest lacks it."""
        if role not in self.files:
            raise ModelError(f"{folder / MANIFEST_NAME}: no entry for {role.value}")
        return folder / self.files[role].path


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_manifest(folder: Path, verify: bool = True) -> Manifest:
    """Read ``folder/manifest.json``; with ``verify``, check every listed file's sha256."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise ModelError(f"{folder}: no {MANIFEST_NAME} (not a model folder)")
    try:
        manifest = Manifest.model_validate_json(path.read_text())
    except ValidationError as exc:
        raise ModelError(f"{path}: invalid manifest: {exc}") from exc
    if verify:
        verify_files(folder, manifest)
    return manifest


def verify_files(folder: Path, manifest: Manifest) -> None:
    """Raise :class:`ModelError` naming each file that is missing or whose sha256 differs."""
    problems = []
    for role, entry in manifest.files.items():
        file = folder / entry.path
        if not file.is_file():
            problems.append(f"{role.value}: {entry.path} is missing")
            continue
        actual = sha256_of(file)
        if actual != entry.sha256:
            problems.append(
                f"{role.value}: {entry.path} has sha256 {actual[:12]}…, "
                f"manifest says {entry.sha256[:12]}…"
            )
    if problems:
        raise ModelError(
            f"{folder / MANIFEST_NAME} does not match its ONNX files: " + "; ".join(problems)
        )


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    """Write ``manifest.json`` into ``folder``."""
    path = folder / MANIFEST_NAME
    path.write_text(manifest.model_dump_json(indent=2) + "\n")
    return path


def catalogue_folders(root: Path) -> list[Path]:
    """``root`` itself when it is a model folder, else its model sub-folders (sorted)."""
    if (root / MANIFEST_NAME).is_file():
        return [root]
    if not root.is_dir():
        raise ModelError(f"{root}: no such model folder")
    folders = sorted(p for p in root.iterdir() if (p / MANIFEST_NAME).is_file())
    if not folders:
        raise ModelError(f"{root}: neither a model folder nor a folder of model folders")
    return folders
