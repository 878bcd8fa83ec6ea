"""Two-stage training of the cascade: net 1 on balanced samples, net 2 on net 1's mistakes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mslesion.models.network import CascadeNet
from mslesion.models.onnx_export import load_net_from_onnx
from mslesion.models.training.dataset import Subject
from mslesion.models.training.lesion_bank import DEFAULT_CONTRAST
from mslesion.models.training.sampling import net1_samples, net2_samples
from mslesion.models.training.torch_session import dense_session
from mslesion.models.training.trainer import TrainConfig, TrainResult, train_net
from mslesion.services.errors import InputError
from mslesion.services.segmentation.dense import dense_predict
from mslesion.services.segmentation.inputs import ContextChannel, Standardisation, candidate_mask
from mslesion.services.segmentation.manifest import NetRole, load_manifest
from mslesion.services.segmentation.patchwise import extract_patches, patch_view

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CascadeTrainConfig:
    """Everything that decides what the cascade learns."""

    modalities: list[str]
    train: TrainConfig = field(default_factory=TrainConfig)
    candidate_flair_z: float = 0.5
    net1_threshold: float = 0.5
    max_lesion_voxels: int | None = 10_000  # per subject and net, bounds CPU time
    lesion_balance: float = 0.0  # share of the lesion-voxel draw spread evenly over lesions
    synthetic_copies: int = 0  # per subject, with real lesion shapes pasted in
    lesions_per_copy: int = 25
    # A pasted lesion's core, × the normal white matter's (T1 1.0: as bright as white matter)
    lesion_flair_contrast: tuple[float, float] = DEFAULT_CONTRAST["flair"]
    lesion_t1_contrast: tuple[float, float] = DEFAULT_CONTRAST["t1"]
    lesion_bank: Path | None = None
    clinical_simulation: float = 0.0  # thick-slice probability for synthetic copies (0: off)
    regrid: float = 0.0  # probability that a synthetic copy is re-gridded as serving does
    contrast_gamma: float = 0.0  # max |log gamma| of the contrast change of synthetic copies
    standardisation: Standardisation = Standardisation.ZSCORE
    smoothing: float = 0.0  # σ (voxels) of the in-brain Gaussian before standardisation
    context: tuple[ContextChannel, ...] = ()
    init: Path | None = None  # fine-tune this model folder's dense layers
    tile: int = 40


@dataclass
class TrainingSet:
    """One subject ready for sampling: normalised stack, brain, lesion mask, candidates."""

    name: str
    stack: np.ndarray
    brain: np.ndarray
    mask: np.ndarray
    candidates: np.ndarray


@dataclass
class CascadeTrainOutput:
    """Both trained nets and what happened while training them."""

    net1: CascadeNet
    net2: CascadeNet
    results: dict[str, TrainResult]
    info: dict[str, object] = field(default_factory=dict)


def _synthetic_copies(
    subjects: list[Subject], config: CascadeTrainConfig, rng: np.random.Generator
) -> list[Subject]:
    if config.synthetic_copies <= 0:
        return []
    if config.lesion_bank is None:
        raise InputError("synthetic copies need a lesion bank (--lesion-bank)")
    from mslesion.models.training.acquisition import simulate_clinical
    from mslesion.models.training.contrast import random_contrast
    from mslesion.models.training.lesion_bank import LesionBank, paste_lesions

    bank = LesionBank.load(config.lesion_bank)
    contrast = {
        **DEFAULT_CONTRAST,
        "flair": config.lesion_flair_contrast,
        "t1": config.lesion_t1_contrast,
    }
    copies = []
    for s in subjects:
        brain = s.images[config.modalities[0]] != 0
        for k in range(config.synthetic_copies):
            images, mask = paste_lesions(
                s.images, brain, s.mask, bank, rng, config.lesions_per_copy, contrast
            )
            if config.clinical_simulation > 0:
                images = simulate_clinical(images, brain, rng, config.clinical_simulation)
            copy = Subject(f"{s.name}+synth{k + 1}", images, mask, s.affine, s.spacing, s.wm_prior)
            copy_brain = brain
            # After the acquisition, before contrast: serving interpolates what was acquired.
            if config.regrid > 0 and rng.random() < config.regrid:
                copy = _regridded(copy, brain, rng)
                copy_brain = copy.images[config.modalities[0]] != 0
            if config.contrast_gamma > 0:
                copy.images = random_contrast(
                    copy.images, copy_brain, copy.wm_prior, rng, config.contrast_gamma
                )
            copies.append(copy)
    return copies


def _regridded(subject: Subject, brain: np.ndarray, rng: np.random.Generator) -> Subject:
    from mslesion.models.training.regrid import random_rigid, regrid

    transform = random_rigid(brain.shape, rng)
    moved = regrid(subject.images, brain, subject.mask, subject.wm_prior, transform)
    return Subject(
        subject.name, moved.images, moved.mask, subject.affine, subject.spacing, moved.wm_prior
    )


def prepare_sets(subjects: list[Subject], config: CascadeTrainConfig) -> list[TrainingSet]:
    """Normalise each subject exactly as serving does and find its candidate voxels."""
    sets = []
    for s in subjects:
        stack, brain = s.normalised(
            config.modalities, config.standardisation, config.context, config.smoothing
        )
        cand = candidate_mask(stack, brain, config.candidate_flair_z)
        sets.append(TrainingSet(s.name, stack, brain, s.mask & brain, cand))
    return sets


def _gather(
    sets: list[TrainingSet], samples: list[tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    patches, labels = [], []
    for ts, (voxels, y) in zip(sets, samples, strict=True):
        patches.append(extract_patches(patch_view(ts.stack), voxels))
        labels.append(y)
    return np.concatenate(patches), np.concatenate(labels)


def _initial_net(config: CascadeTrainConfig, role: NetRole) -> CascadeNet:
    # Seed here too: initial weights must not depend on what consumed torch's RNG before.
    torch.manual_seed(config.train.seed + (1 if role is NetRole.NET1_DENSE else 2))
    if config.init is None:
        return CascadeNet(len(config.modalities) + len(config.context))
    manifest = load_manifest(config.init, verify=True)
    if [m.lower() for m in manifest.modalities] != [m.lower() for m in config.modalities]:
        raise InputError(
            f"--init model takes modalities {manifest.modalities}, "
            f"but training asks for {config.modalities}"
        )
    norm = manifest.normalisation
    if (norm.method, tuple(manifest.context), norm.smoothing_voxels) != (
        config.standardisation,
        config.context,
        config.smoothing,
    ):
        raise InputError(
            f"--init model uses {norm.method.value} standardisation, smoothing "
            f"{norm.smoothing_voxels:g} and context {[c.value for c in manifest.context]}; "
            f"training asks for {config.standardisation.value}, {config.smoothing:g} and "
            f"{[c.value for c in config.context]}"
        )
    net = load_net_from_onnx(manifest.file_path(config.init, role))
    net.freeze_features()
    return net


def train_cascade(subjects: list[Subject], config: CascadeTrainConfig) -> CascadeTrainOutput:
    """Train net 1, find its false positives on the training volumes, train net 2 on them."""
    rng = np.random.default_rng(config.train.seed)
    all_subjects = subjects + _synthetic_copies(subjects, config, rng)
    sets = prepare_sets(all_subjects, config)
    output = train_on_sets(sets, config, rng, lambda role: _initial_net(config, role))
    output.info = {
        "subjects": [s.name for s in subjects],
        "synthetic_subjects": len(all_subjects) - len(subjects),
        **output.info,
        "fine_tuned_from": str(config.init) if config.init else None,
    }
    return output


def train_on_sets(
    sets: list[TrainingSet],
    config: CascadeTrainConfig,
    rng: np.random.Generator,
    initial_net: Callable[[NetRole], CascadeNet],
) -> CascadeTrainOutput:
    """The seed's two stages on prepared sets: net 1 on balanced samples, net 2 on its mistakes.

    Shared by the lesion cascade and the follow-up change detector (same nets, other inputs).
    """
    cap = config.max_lesion_voxels
    balance = config.lesion_balance
    s1 = [net1_samples(ts.mask, ts.candidates, rng, cap, balance) for ts in sets]
    x1, y1 = _gather(sets, s1)
    log.info("net 1: %d patches (%d lesion)", len(y1), int(y1.sum()))
    r1 = train_net(initial_net(NetRole.NET1_DENSE), x1, y1, config.train, "net1")
    del x1

    session = dense_session(r1.net)
    s2 = []
    false_positives = {}
    for ts in sets:
        prob1 = dense_predict(session, ts.stack, ts.candidates, config.tile)
        false_positives[ts.name] = int(((prob1 > config.net1_threshold) & ~ts.mask).sum())
        s2.append(
            net2_samples(ts.mask, ts.candidates, prob1, config.net1_threshold, rng, cap, balance)
        )
    x2, y2 = _gather(sets, s2)
    log.info("net 2: %d patches (%d lesion)", len(y2), int(y2.sum()))
    r2 = train_net(initial_net(NetRole.NET2_DENSE), x2, y2, config.train, "net2")

    info: dict[str, object] = {
        "net1_patches": len(y1),
        "net2_patches": len(y2),
        "net1_false_positives": false_positives,
        "net1_best_epoch": r1.best_epoch,
        "net2_best_epoch": r2.best_epoch,
        "net1_val_accuracy": round(r1.best_val_accuracy, 4),
        "net2_val_accuracy": round(r2.best_val_accuracy, 4),
    }
    return CascadeTrainOutput(r1.net, r2.net, {"net1": r1, "net2": r2}, info)
