"""``mslesion train``: load subjects, train the cascade, export a model folder."""

from __future__ import annotations

import logging
import os
import platform
import sys
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

from mslesion.models.package import export_model_folder
from mslesion.models.training.cascade_train import CascadeTrainConfig, train_cascade
from mslesion.models.training.dataset import Subject, load_dataset
from mslesion.models.training.environment import training_environment
from mslesion.models.training.trainer import TrainConfig
from mslesion.services.segmentation.inputs import Standardisation
from mslesion.services.segmentation.manifest import Manifest, Normalisation, Thresholds

log = logging.getLogger(__name__)


def run_training(
    data_dir: Path | list[Path],
    out: Path,
    config: CascadeTrainConfig,
    thresholds: Thresholds,
    *,
    name: str,
    version: str,
    subjects: list[str] | None = None,
) -> Manifest:
    """Train on every subject folder of ``data_dir`` (or ``subjects``) and export to ``out``.

    ``data_dir`` may be several dataset folders (e.g. two sites); their subjects are pooled.
    """
    folders = data_dir if isinstance(data_dir, list) else [data_dir]
    data = [s for d in folders for s in load_dataset(d, config.modalities, only=subjects)]
    description = ",".join(str(d) for d in folders)
    return train_and_export(data, description, out, config, thresholds, name=name, version=version)


def train_and_export(
    data: list[Subject],
    data_description: str,
    out: Path,
    config: CascadeTrainConfig,
    thresholds: Thresholds,
    *,
    name: str,
    version: str,
) -> Manifest:
    """Train the cascade on loaded subjects and export the model folder to ``out``."""
    log.info("training on %d subjects: %s", len(data), ", ".join(s.name for s in data))
    result = train_cascade(data, config)
    training = training_record(
        config.train,
        data_description,
        {
            "candidate_flair_z": config.candidate_flair_z,
            "net1_threshold": config.net1_threshold,
            "max_lesion_voxels": config.max_lesion_voxels,
            "lesion_balance": config.lesion_balance,
            "synthetic_copies": config.synthetic_copies,
            "lesions_per_copy": config.lesions_per_copy,
            "lesion_flair_contrast": list(config.lesion_flair_contrast),
            "lesion_t1_contrast": list(config.lesion_t1_contrast),
            "clinical_simulation": config.clinical_simulation,
            "regrid": config.regrid,
            "contrast_gamma": config.contrast_gamma,
        },
        result.info,
    )
    return export_model_folder(
        result.net1,
        result.net2,
        out,
        name=name,
        version=version,
        modalities=config.modalities,
        spacing_mm=data[0].spacing,
        thresholds=thresholds.model_copy(
            update={"candidate_flair_z": config.candidate_flair_z, "net1": config.net1_threshold}
        ),
        training=training,
        normalisation=Normalisation(
            method=config.standardisation,
            region=_region(config),
            smoothing_voxels=config.smoothing,
        ),
        context=list(config.context),
    )


def training_record(
    train: TrainConfig,
    data_description: str,
    options: Mapping[str, object],
    info: Mapping[str, object],
) -> dict[str, object]:
    """A manifest's ``training`` entry: command, data, seed, every option that shaped the nets."""
    train_cfg = asdict(train)
    train_cfg.pop("progress", None)
    return {
        "command": " ".join(["mslesion", *sys.argv[1:]]) if sys.argv else "",
        "data_dir": data_description,
        "seed": train.seed,
        "config": {**train_cfg, **options},
        "python": platform.python_version(),
        "environment": training_environment(dict(os.environ)),
        **info,
    }


def _region(config: CascadeTrainConfig) -> str:
    if config.standardisation is Standardisation.WM_PEAK:
        return "peak of the histogram inside template white matter (probability >= 0.9)"
    return Normalisation().region
