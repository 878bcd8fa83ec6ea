"""Write a trained cascade as a model folder: four ONNX files and a manifest with checksums."""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from mslesion.models.network import CascadeNet
from mslesion.models.onnx_export import save_onnx
from mslesion.services.segmentation.inputs import ContextChannel
from mslesion.services.segmentation.manifest import (
    Manifest,
    ModelFile,
    NetRole,
    Normalisation,
    Thresholds,
    sha256_of,
    write_manifest,
)


def export_model_folder(
    net1: CascadeNet,
    net2: CascadeNet,
    out: Path,
    *,
    name: str,
    version: str,
    modalities: list[str],
    spacing_mm: tuple[float, float, float],
    thresholds: Thresholds,
    training: dict[str, object],
    metrics: dict[str, object] | None = None,
    normalisation: Normalisation | None = None,
    context: list[ContextChannel] | None = None,
) -> Manifest:
    """Export both nets (dense and patch forms) and the manifest into ``out``, atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        files = {}
        for role, net, dense in (
            (NetRole.NET1_DENSE, net1, True),
            (NetRole.NET2_DENSE, net2, True),
            (NetRole.NET1_PATCH, net1, False),
            (NetRole.NET2_PATCH, net2, False),
        ):
            path = save_onnx(
                net,
                staging / f"{role.value}.onnx",
                dense,
                doc=f"mslesion {name} {version} {role.value}",
            )
            files[role] = ModelFile(path=path.name, sha256=sha256_of(path))
        manifest = Manifest(
            name=name,
            version=version,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            modalities=modalities,
            spacing_mm=spacing_mm,
            thresholds=thresholds,
            normalisation=normalisation or Normalisation(),
            context=context or [],
            files=files,
            training=training,
            metrics=metrics or {},
        )
        write_manifest(staging, manifest)
        if out.exists():
            keep = [
                p for p in out.iterdir() if p.suffix not in {".onnx"} and p.name != "manifest.json"
            ]
            for p in keep:  # model card and other docs survive a re-export
                shutil.move(str(p), staging / p.name)
            shutil.rmtree(out)
        staging.chmod(0o755)  # mkdtemp creates 0700; a model folder is meant to be shared
        staging.rename(out)
        return manifest
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
