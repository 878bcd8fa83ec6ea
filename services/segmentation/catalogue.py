"""Which model analyses a study: the richest one whose modalities the study holds.

Clinical studies hold FLAIR alone, FLAIR and T1, or FLAIR, T1 and T2. A *catalogue* is either
one model folder (``manifest.json`` inside) or a folder of model folders (the shipped
``models/shipped/``). :meth:`ModelSet.choose` takes the model that uses the most of the series
the study has, never one that needs a series the study lacks, and says why in one line for the
job log. ONNX Runtime sessions are created once per model and kept (:meth:`ModelSet.get`).
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from mslesion.services.config import Provider, Settings
from mslesion.services.errors import InputError
from mslesion.services.segmentation.cascade import CascadeModel
from mslesion.services.segmentation.manifest import Manifest, catalogue_folders, load_manifest


@dataclass(frozen=True)
class ModelChoice:
    """The model chosen for a study and the reason, as the job log states it."""

    folder: Path
    manifest: Manifest
    reason: str


@dataclass(frozen=True)
class SessionOptions:
    """How ONNX Runtime sessions are created (from the settings object)."""

    provider: Provider = Provider.AUTO
    threads: int = 0
    device_id: int = 0
    tile: int = 64
    tile_batch: int = 1


def _label(modalities: Collection[str]) -> str:
    return "+".join(m.upper() for m in modalities) or "none"


class ModelSet:
    """The models a node may use, each loaded on first use and kept for the process."""

    def __init__(self, root: Path, options: SessionOptions | None = None) -> None:
        self.root = root
        self.options = options or SessionOptions()
        self.folders = catalogue_folders(root)
        self.manifests = {f: load_manifest(f, verify=False) for f in self.folders}
        self._loaded: dict[Path, CascadeModel] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, root: Path | None = None) -> ModelSet:
        """The catalogue ``root`` (default: the settings' ``model_dir``), sessions as set."""
        return cls(
            root or settings.model_dir,
            SessionOptions(
                provider=settings.provider,
                threads=settings.intra_op_threads,
                device_id=settings.cuda_device_id,
                tile=settings.tile_size,
                tile_batch=settings.tile_batch,
            ),
        )

    def verify(self) -> None:
        """Check every model's files against its manifest (:class:`ModelError` if one differs)."""
        for folder in self.folders:
            load_manifest(folder, verify=True)

    def choose(self, available: Collection[str]) -> ModelChoice:
        """The model using the most of ``available`` series (lower-case roles), with reason.

        Raises :class:`InputError` when no model can run on the series the study holds.
        """
        have = {a.lower() for a in available}
        fits: list[tuple[Path, Manifest, list[str]]] = []
        lacking: list[tuple[Path, Manifest, list[str]]] = []
        for folder, manifest in self.manifests.items():
            missing = [m.lower() for m in manifest.modalities if m.lower() not in have]
            (lacking if missing else fits).append((folder, manifest, missing))
        if not fits:
            needs = "; ".join(f"{m.name} needs {_label(m.modalities)}" for _, m, _ in lacking)
            raise InputError(f"no model can analyse a study with {_label(sorted(have))}: {needs}")
        folder, manifest, _ = max(fits, key=lambda fit: len(fit[1].modalities))
        reason = (
            f"study has {_label(sorted(have))}: model {manifest.name} {manifest.version} "
            f"({_label(manifest.modalities)}), the richest the study supports"
        )
        if lacking:
            reason += "; not usable: " + ", ".join(
                f"{m.name} (no {_label(missing)})" for _, m, missing in lacking
            )
        return ModelChoice(folder, manifest, reason)

    def load_all(self) -> None:
        """Create every model's sessions now (a worker does it once, when its process starts)."""
        for folder in self.folders:
            self.get(folder)

    def get(self, folder: Path) -> CascadeModel:
        """The loaded model of ``folder`` (created once; checksums verified then)."""
        with self._lock:
            if folder not in self._loaded:
                o = self.options
                self._loaded[folder] = CascadeModel(
                    folder,
                    provider=o.provider,
                    threads=o.threads,
                    device_id=o.device_id,
                    tile=o.tile,
                    tile_batch=o.tile_batch,
                )
            return self._loaded[folder]
