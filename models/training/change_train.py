"""Train the follow-up change detector: the cascade's two nets on synthetic visit pairs.

The detector is a cascade model folder like the lesion models (same nets, same ONNX graphs,
same manifest), whose two input channels are the current FLAIR and the prior FLAIR
registered onto it (``flair``, ``prior_flair``), each smoothed inside the brain and scaled on
its own brain median and interquartile range. Its "lesion" class is *new or enlarging lesion
tissue*. Net 1 learns from every change voxel against as many random candidates (current
FLAIR above the candidate threshold: mostly unchanged lesions and bright normal tissue);
net 2 from net 1's mistakes. Pairs come from :mod:`mslesion.models.training.change_pairs`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from mslesion.models.network import CascadeNet
from mslesion.models.package import export_model_folder
from mslesion.models.training.cascade_train import (
    CascadeTrainConfig,
    TrainingSet,
    train_on_sets,
)
from mslesion.models.training.change_pairs import PairOptions, synthesise_pair
from mslesion.models.training.dataset import Subject
from mslesion.models.training.lesion_bank import LesionBank, white_matter_proxy
from mslesion.models.training.run import training_record
from mslesion.models.training.trainer import TrainConfig
from mslesion.services.segmentation.inputs import Standardisation, candidate_mask, prepare_stack
from mslesion.services.segmentation.manifest import (
    Manifest,
    NetRole,
    Normalisation,
    Thresholds,
)

log = logging.getLogger(__name__)

MODALITIES = ["flair", "prior_flair"]  # channel 0 is the current FLAIR (candidates)
SMOOTHING_VOXELS = 0.5
PASTE_WM_PRIOR = 0.5
PASTE_EROSION_VOXELS = 3


@dataclass(frozen=True)
class ChangeTrainConfig:
    """What decides what the change detector learns."""

    lesion_bank: Path
    train: TrainConfig = field(default_factory=TrainConfig)
    pairs_per_subject: int = 3
    candidate_z: float = 0.0  # current FLAIR above the brain median
    net1_threshold: float = 0.5
    max_change_voxels: int = 3000  # per pair and net
    pair_options: PairOptions = field(default_factory=PairOptions)

    def cascade(self) -> CascadeTrainConfig:
        """The equivalent lesion-cascade configuration (sampling and thresholds)."""
        return CascadeTrainConfig(
            modalities=MODALITIES,
            train=self.train,
            candidate_flair_z=self.candidate_z,
            net1_threshold=self.net1_threshold,
            max_lesion_voxels=self.max_change_voxels,
            standardisation=Standardisation.ROBUST,
            smoothing=SMOOTHING_VOXELS,
        )


def pair_stack(prior: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(2, X, Y, Z) input and brain of a pair on one grid, exactly as serving builds it."""
    return prepare_stack(
        {"flair": current, "prior_flair": prior},
        MODALITIES,
        standardisation=Standardisation.ROBUST,
        smoothing=SMOOTHING_VOXELS,
    )


def training_sets(
    subjects: list[Subject], config: ChangeTrainConfig, rng: np.random.Generator
) -> list[TrainingSet]:
    """``pairs_per_subject`` synthetic pairs of every subject, as the nets will see them."""
    bank = LesionBank.load(config.lesion_bank)
    sets = []
    for s in subjects:
        flair = s.images["flair"]
        wm = paste_region(flair, s.wm_prior)
        for k in range(config.pairs_per_subject):
            pair = synthesise_pair(flair, s.mask, bank, rng, config.pair_options, wm=wm)
            stack, brain = pair_stack(pair.prior, pair.current)
            change = pair.change & brain
            candidates = candidate_mask(stack, brain, config.candidate_z)
            log.info(
                "%s pair %d: %d new, %d enlarging, %d change voxels (%d candidates)",
                s.name, k + 1, pair.n_new, pair.n_enlarging, int(change.sum()),
                int((change & candidates).sum()),
            )  # fmt: skip
            sets.append(TrainingSet(f"{s.name}/pair{k + 1}", stack, brain, change, candidates))
    return sets


def paste_region(flair: np.ndarray, wm_prior: np.ndarray | None) -> np.ndarray:
    """Where new lesions may be pasted: white matter away from the brain's edge.

    The registered template's white matter (``mslesion prepare`` writes it) where there is one:
    on a FLAIR alone, the intensity band that stands in for it is ragged on thick-slice scans,
    and whole lesion shapes rarely fit inside it.
    """
    brain = flair > 0
    if wm_prior is None:
        return white_matter_proxy({"flair": flair}, brain)
    inner = ndimage.binary_erosion(brain, iterations=PASTE_EROSION_VOXELS)
    return (wm_prior >= PASTE_WM_PRIOR) & inner


def _initial_net(seed: int, role: NetRole) -> CascadeNet:
    torch.manual_seed(seed + (1 if role is NetRole.NET1_DENSE else 2))
    return CascadeNet(len(MODALITIES))


def train_change_detector(
    subjects: list[Subject],
    config: ChangeTrainConfig,
    out: Path,
    *,
    name: str,
    version: str,
    data_description: str,
) -> Manifest:
    """Synthesise pairs from ``subjects``, train both nets, export the model folder ``out``."""
    rng = np.random.default_rng(config.train.seed)
    sets = training_sets(subjects, config, rng)
    cascade = config.cascade()
    result = train_on_sets(sets, cascade, rng, lambda role: _initial_net(config.train.seed, role))
    training = training_record(
        config.train,
        data_description,
        {
            "pairs_per_subject": config.pairs_per_subject,
            "candidate_flair_z": config.candidate_z,
            "net1_threshold": config.net1_threshold,
            "max_change_voxels": config.max_change_voxels,
            "pair_options": asdict(config.pair_options),
        },
        {
            "task": "new or enlarging lesion tissue between two visits (synthetic pairs)",
            "subjects": [s.name for s in subjects],
            **result.info,
        },
    )
    return export_model_folder(
        result.net1,
        result.net2,
        out,
        name=name,
        version=version,
        modalities=MODALITIES,
        spacing_mm=(1.0, 1.0, 1.0),
        thresholds=Thresholds(candidate_flair_z=config.candidate_z, net1=config.net1_threshold),
        training=training,
        normalisation=Normalisation(
            method=Standardisation.ROBUST,
            region="each visit on its own brain: median and interquartile range",
            smoothing_voxels=SMOOTHING_VOXELS,
        ),
    )
