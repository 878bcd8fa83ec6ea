"""Cross-site evaluation: train on some sites, score on a site the model never saw.

A *site* is a folder of prepared cases (:mod:`mslesion.devtools.prepare`). Each case is
segmented the way the DICOM pipeline segments a study — standardised on the model grid,
candidates restricted to the white-matter region, probabilities mapped back to the native
FLAIR grid, thresholded there with the minimum lesion size in ml — and scored against the
untouched native lesion mask. The baseline beside it is a plain FLAIR threshold (z > 1.5 over
the brain, lesions ≥ 10 voxels of 1 mm³), mapped to the native grid the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np
from pydantic import BaseModel

from mslesion.devtools.metrics import CaseMetrics, EvaluationSummary, evaluate_case, summarise
from mslesion.devtools.prepare import PreparedCase, load_prepared, native_truth, to_native
from mslesion.services.config import Provider
from mslesion.services.errors import InputError
from mslesion.services.imaging.units import voxel_volume_ml_from_spacing
from mslesion.services.pipeline import binarise_native, reporting_floor
from mslesion.services.segmentation.cascade import CascadeModel, CascadeOutput
from mslesion.services.segmentation.inputs import ContextChannel, Standardisation, prepare_stack
from mslesion.services.segmentation.manifest import Thresholds
from mslesion.services.segmentation.prior import (
    WM_PRIOR_DILATE_MM,
    WM_PRIOR_THRESHOLD,
    white_matter_roi,
)

if TYPE_CHECKING:
    from mslesion.models.training.cascade_train import CascadeTrainConfig

log = logging.getLogger(__name__)

BASELINE_Z = 1.5
BASELINE_LMIN_ML = 0.010
BASELINE_LMIN_VOXELS = 10  # the baseline's lesions obey the models' size rule
T_BINS = (0.5, 0.6, 0.7, 0.8, 0.9)
L_MINS_ML = (0.01, 0.02, 0.03, 0.05)
"""Minimum lesion sizes scored beside the manifest's: 10 voxels of 1 mm³ (the shipped
``l_min``) up to 0.05 ml, a sphere of 4.6 mm diameter (McDonald counts lesions >= 3 mm)."""
OperatingPoint = tuple[float, float]
"""(final threshold t_bin, minimum lesion size in ml) at which a model is scored."""


@dataclass(frozen=True)
class Recipe:
    """What a named training recipe changes: inputs, augmentation, candidate threshold."""

    standardisation: Standardisation
    context: tuple[ContextChannel, ...] = ()
    contrast_gamma: float = 0.0
    candidate: float = 0.1
    regrid: float = 0.0  # probability that a synthetic copy is re-gridded as serving does
    smoothing: float = 0.0  # σ (voxels) of the in-brain Gaussian before standardisation
    lesion_balance: float = 0.0  # share of the lesion-voxel draw spread evenly over lesions
    # Pasted lesions' FLAIR and T1, × white matter; None: lesion_bank.DEFAULT_CONTRAST.
    lesion_flair: tuple[float, float] | None = None
    lesion_t1: tuple[float, float] | None = None


_WM_PRIOR = (ContextChannel.WM_PRIOR,)
RECIPES: dict[str, Recipe] = {
    "zscore": Recipe(Standardisation.ZSCORE, candidate=0.5),
    "wm-peak": Recipe(Standardisation.WM_PEAK),
    "wm-peak+context": Recipe(Standardisation.WM_PEAK, _WM_PRIOR),
    "full": Recipe(Standardisation.WM_PEAK, _WM_PRIOR, 0.4),
    "full+regrid": Recipe(Standardisation.WM_PEAK, _WM_PRIOR, 0.4, regrid=1.0),
    "full+smooth": Recipe(Standardisation.WM_PEAK, _WM_PRIOR, 0.4, smoothing=0.5),
    "full+smooth+balance": Recipe(
        Standardisation.WM_PEAK, _WM_PRIOR, 0.4, smoothing=0.5, lesion_balance=0.5
    ),
    "full+smooth+faint": Recipe(
        Standardisation.WM_PEAK, _WM_PRIOR, 0.4, smoothing=0.5, lesion_flair=(1.15, 1.8)
    ),
    "full+smooth+faint+balance": Recipe(
        Standardisation.WM_PEAK,
        _WM_PRIOR,
        0.4,
        smoothing=0.5,
        lesion_balance=0.5,
        lesion_flair=(1.15, 1.8),
    ),
    "full+smooth+t1iso": Recipe(
        Standardisation.WM_PEAK, _WM_PRIOR, 0.4, smoothing=0.5, lesion_t1=(0.55, 1.0)
    ),
}
_FILES = {"flair": "FLAIR.nii.gz", "t1": "T1.nii.gz", "t2": "T2.nii.gz"}


@dataclass(frozen=True)
class Site:
    """A named set of prepared cases from one hospital or public dataset."""

    name: str
    cases: tuple[PreparedCase, ...]

    def with_modalities(self, modalities: Sequence[str]) -> tuple[PreparedCase, ...]:
        """The cases that hold every modality a model takes."""
        return tuple(c for c in self.cases if set(modalities) <= set(c.modalities))


@dataclass(frozen=True)
class RecipeOptions:
    """Training options shared by every recipe of one evaluation."""

    max_epochs: int = 6
    patience: int = 2  # the shipped models' early stopping
    seed: int = 42
    max_lesion_voxels: int = 1000
    synthetic_copies: int = 2
    lesion_bank: Path | None = None
    clinical_simulation: float = 0.7


def recipe_config(
    name: str, modalities: Sequence[str], options: RecipeOptions
) -> CascadeTrainConfig:
    """The training configuration of a named recipe (see :data:`RECIPES`)."""
    from mslesion.models.training.cascade_train import CascadeTrainConfig
    from mslesion.models.training.lesion_bank import DEFAULT_CONTRAST
    from mslesion.models.training.trainer import TrainConfig

    if name not in RECIPES:
        raise InputError(f"unknown recipe {name!r}: one of {', '.join(RECIPES)}")
    recipe = RECIPES[name]
    return CascadeTrainConfig(
        modalities=list(modalities),
        train=TrainConfig(
            batch_size=256,
            max_epochs=options.max_epochs,
            patience=options.patience,
            seed=options.seed,
            progress=False,
        ),
        candidate_flair_z=recipe.candidate,
        max_lesion_voxels=options.max_lesion_voxels,
        lesion_balance=recipe.lesion_balance,
        synthetic_copies=options.synthetic_copies,
        lesions_per_copy=30,
        lesion_flair_contrast=recipe.lesion_flair or DEFAULT_CONTRAST["flair"],
        lesion_t1_contrast=recipe.lesion_t1 or DEFAULT_CONTRAST["t1"],
        lesion_bank=options.lesion_bank,
        clinical_simulation=options.clinical_simulation,
        regrid=recipe.regrid,
        contrast_gamma=recipe.contrast_gamma,
        standardisation=recipe.standardisation,
        smoothing=recipe.smoothing,
        context=recipe.context,
    )


class SiteScores(BaseModel):
    """A model (or the baseline) scored on one held-out site."""

    method: str
    site: str
    t_bin: float
    l_min_ml: float = BASELINE_LMIN_ML
    summary: EvaluationSummary


def _array(path: Path) -> np.ndarray:
    image = nib.load(str(path))
    return np.asarray(image.get_fdata(dtype=np.float32))  # type: ignore[attr-defined]


def load_case_images(case: PreparedCase, modalities: Sequence[str]) -> dict[str, np.ndarray]:
    """The prepared images of a case (model grid) for the given modalities."""
    return {m: _array(case.folder / _FILES[m]) for m in modalities}


def case_wm_prior(case: PreparedCase) -> np.ndarray:
    """The registered template white-matter probability of a case (model grid)."""
    return _array(case.folder / "wm_prior.nii.gz")


def _score(
    case: PreparedCase,
    prob_model: np.ndarray,
    points: Sequence[OperatingPoint],
    l_min_voxels: int,
) -> list[CaseMetrics]:
    """Metrics at each point; lesions also need ``l_min_voxels`` acquired voxels, as served."""
    truth, voxel_ml = native_truth(case)
    prob_native = to_native(case, prob_model)
    return [
        evaluate_case(
            binarise_native(prob_native, t, l_min_ml, voxel_ml, l_min_voxels),
            truth,
            voxel_ml,
            case.name,
            min_truth_voxels=reporting_floor(l_min_ml, voxel_ml, l_min_voxels),
        )
        for t, l_min_ml in points
    ]


def operating_points(
    manifest_l_min_ml: float,
    t_bins: Sequence[float] = T_BINS,
    l_mins_ml: Sequence[float] = L_MINS_ML,
) -> list[OperatingPoint]:
    """Every (t_bin, l_min) pair to score.

    Each threshold goes with the manifest's minimum lesion size and the swept ones, rounded
    to the µl (so that 10 voxels of 1 mm³ is 0.01 ml).
    """
    sizes = sorted({round(v, 6) for v in (manifest_l_min_ml, *l_mins_ml)})
    return [(t, size) for t in t_bins for size in sizes]


def cascade_case(model: CascadeModel, case: PreparedCase) -> tuple[CascadeOutput, np.ndarray]:
    """The cascade's output on a prepared case (model grid) and the white-matter region it used.

    Candidates are restricted to the registered template's white-matter region, as the
    pipeline restricts them.
    """
    prior = case_wm_prior(case)
    roi = white_matter_roi(prior, WM_PRIOR_THRESHOLD, WM_PRIOR_DILATE_MM)
    images = load_case_images(case, model.manifest.modalities)
    return model.predict(images, restrict=roi, wm_prior=prior), roi


def segment_case(model: CascadeModel, case: PreparedCase) -> np.ndarray:
    """The lesion probability of a prepared case on the model grid, as the pipeline computes it."""
    return cascade_case(model, case)[0].prob


def score_model(
    model_dir: Path,
    cases: Sequence[PreparedCase],
    t_bins: Sequence[float] = T_BINS,
    l_mins_ml: Sequence[float] = L_MINS_ML,
) -> dict[OperatingPoint, list[CaseMetrics]]:
    """Segment each case as the pipeline does and score it at each operating point."""
    return score_ensemble([model_dir], cases, t_bins, l_mins_ml)


def score_ensemble(
    model_dirs: Sequence[Path],
    cases: Sequence[PreparedCase],
    t_bins: Sequence[float] = T_BINS,
    l_mins_ml: Sequence[float] = L_MINS_ML,
) -> dict[OperatingPoint, list[CaseMetrics]]:
    """:func:`score_model` for the mean lesion probability of several models.

    The members (e.g. one recipe trained with different seeds) must read the same inputs on
    the same grid with the same thresholds; the first one's manifest gives them.

    Raises:
        InputError: when there are no members or they differ in inputs or thresholds.
    """
    models = [CascadeModel(d, provider=Provider.CPU) for d in model_dirs]
    if not models:
        raise InputError("an ensemble needs at least one model")
    m = models[0].manifest
    for other in models[1:]:
        o = other.manifest
        if (o.modalities, o.spacing_mm, o.thresholds) != (m.modalities, m.spacing_mm, m.thresholds):
            raise InputError(f"{o.name} reads other inputs or thresholds than {m.name}")
    shipped_l_min = m.thresholds.l_min * voxel_volume_ml_from_spacing(m.spacing_mm)
    points = operating_points(shipped_l_min, t_bins, l_mins_ml)
    per_point: dict[OperatingPoint, list[CaseMetrics]] = {p: [] for p in points}
    for case in cases:
        prob = np.mean([segment_case(model, case) for model in models], axis=0)
        scored = _score(case, prob, points, m.thresholds.l_min)
        for point, metrics in zip(points, scored, strict=True):
            per_point[point].append(metrics)
        log.info("%s: Dice %.3f at %s", case.name, per_point[points[0]][-1].dice, points[0])
    return per_point


def score_baseline(cases: Sequence[PreparedCase]) -> list[CaseMetrics]:
    """The FLAIR-threshold baseline on each case, scored on the native grid."""
    scores = []
    for case in cases:
        stack, brain = prepare_stack(load_case_images(case, ["flair"]), ["flair"])
        binary = (brain & (stack[0] > BASELINE_Z)).astype(np.float32)
        scores.extend(_score(case, binary, [(0.5, BASELINE_LMIN_ML)], BASELINE_LMIN_VOXELS))
    return scores


def summaries(
    method: str, site: str, per_point: dict[OperatingPoint, list[CaseMetrics]]
) -> list[SiteScores]:
    """One :class:`SiteScores` per operating point."""
    return [
        SiteScores(method=method, site=site, t_bin=t, l_min_ml=l_min, summary=summarise(cases))
        for (t, l_min), cases in per_point.items()
    ]


def baseline_scores(site: str, cases: Sequence[PreparedCase]) -> list[SiteScores]:
    """The FLAIR-threshold baseline of a site's cases as :class:`SiteScores`."""
    return summaries("baseline", site, {(0.5, BASELINE_LMIN_ML): score_baseline(cases)})


def markdown_table(
    scores: Sequence[SiteScores], t_bin: float = 0.5, l_min_ml: float = BASELINE_LMIN_ML
) -> str:
    """Per case and mean at one operating point, one row per method.

    Columns: Dice, lesion TPR / precision / F1, volumes.
    """
    lines = [
        "| site | case | method | Dice | lesion TPR | lesion precision | lesion F1 "
        "| ml truth / found |",
        "|---|---|---|---|---|---|---|---|",
    ]
    chosen = [
        s
        for s in scores
        if (s.t_bin == t_bin and abs(s.l_min_ml - l_min_ml) < 1e-9) or s.method == "baseline"
    ]
    rows = sorted(
        ((s.site, c.case, i), s, c) for i, s in enumerate(chosen) for c in s.summary.cases
    )
    for _, s, c in rows:
        lines.append(
            f"| {s.site} | {c.case} | {s.method} | {c.dice:.3f} | {c.lesion_tpr:.3f} | "
            f"{c.lesion_precision:.3f} | {c.lesion_f1:.3f} | "
            f"{c.truth_volume_ml:.2f} / {c.pred_volume_ml:.2f} |"
        )
    for s in chosen:
        mean = s.summary.mean
        r = s.summary.volume_correlation
        lines.append(
            f"| **{s.site}** | **mean** | {s.method} | **{mean['dice']:.3f}** | "
            f"{mean['lesion_tpr']:.3f} | {mean['lesion_precision']:.3f} | "
            f"**{mean['lesion_f1']:.3f}** | r = {'n/a' if r is None else f'{r:.2f}'} |"
        )
    return "\n".join(lines) + "\n"


def _trained_fold(
    folder: Path,
    train_cases: Sequence[PreparedCase],
    config: CascadeTrainConfig,
    thresholds: Thresholds,
    name: str,
    source: str,
) -> Path:
    """Train and export one fold into ``folder``, unless a model is already there."""
    from mslesion.models.training.dataset import load_subjects
    from mslesion.models.training.run import train_and_export

    if not (folder / "manifest.json").is_file():
        subjects = load_subjects([c.folder for c in train_cases], list(config.modalities))
        train_and_export(
            subjects, source, folder, config, thresholds, name=name, version="cross-site"
        )
    return folder


def leave_one_site_out(
    sites: Sequence[Site],
    config: CascadeTrainConfig,
    recipe: str,
    work: Path,
    thresholds: Thresholds,
) -> list[SiteScores]:
    """For each site: train ``recipe`` on every other site, score it on the held-out one.

    Trained folds are kept under ``work/recipe/without-<site>`` and reused when present.
    """
    results: list[SiteScores] = []
    for held in sites:
        train_cases = [
            c for s in sites if s is not held for c in s.with_modalities(config.modalities)
        ]
        test_cases = held.with_modalities(config.modalities)
        if not train_cases or not test_cases:
            log.warning("%s: no cases with %s to train or test on", held.name, config.modalities)
            continue
        folder = _trained_fold(
            work / recipe / f"without-{held.name}",
            train_cases,
            config,
            thresholds,
            f"{recipe}-without-{held.name}",
            "+".join(s.name for s in sites if s is not held),
        )
        results += summaries(recipe, held.name, score_model(folder, test_cases))
    return results


def pooled_folds(
    sites: Sequence[Site], modalities: Sequence[str], k: int
) -> list[tuple[PreparedCase, ...]]:
    """``k`` folds of the pooled cases, each site's cases dealt out in turn (by name).

    Every fold holds patients of every site that has at least ``k`` of them, so each fold's
    model has seen every site, and each patient is held out exactly once.
    """
    if k < 2:
        raise InputError(f"pooled cross-validation needs at least 2 folds, got {k}")
    folds: list[list[PreparedCase]] = [[] for _ in range(k)]
    dealt = 0
    for site in sites:
        for case in sorted(site.with_modalities(modalities), key=lambda c: c.name):
            folds[dealt % k].append(case)
            dealt += 1
    return [tuple(fold) for fold in folds]


def pooled_cross_validation(
    sites: Sequence[Site],
    config: CascadeTrainConfig,
    recipe: str,
    work: Path,
    thresholds: Thresholds,
    k: int,
) -> list[SiteScores]:
    """Train on the pooled patients of all sites but one fold; score each held-out patient.

    The scores are grouped by the patient's site (method ``<recipe>-pooled-<k>fold``): the
    figure for a site whose scanner the model has seen, beside the leave-one-site-out one.
    Folds are kept under ``work/recipe/pooled-<k>fold-<i>`` and reused.
    """
    folds = pooled_folds(sites, config.modalities, k)
    site_of = {c.folder: s.name for s in sites for c in s.cases}
    per_site: dict[str, dict[OperatingPoint, list[CaseMetrics]]] = {}
    for i, held in enumerate(folds, start=1):
        train_cases = [c for j, fold in enumerate(folds, start=1) if j != i for c in fold]
        folder = _trained_fold(
            work / recipe / f"pooled-{k}fold-{i}",
            train_cases,
            config,
            thresholds,
            f"{recipe}-pooled-{k}fold-{i}",
            "+".join(s.name for s in sites),
        )
        for point, metrics in score_model(folder, held).items():
            for case, scored in zip(held, metrics, strict=True):
                per_site.setdefault(site_of[case.folder], {}).setdefault(point, []).append(scored)
    method = f"{recipe}-pooled-{k}fold"
    return [s for site, points in per_site.items() for s in summaries(method, site, points)]


def evaluate_sites(
    sites: Sequence[Site],
    recipes: Sequence[str],
    modalities: Sequence[str],
    options: RecipeOptions,
    work: Path,
    pooled_k: int = 0,
) -> list[SiteScores]:
    """The baseline on every site, then each recipe trained leave-one-site-out.

    With ``pooled_k`` ≥ 2 each recipe is also cross-validated in ``pooled_k`` folds over the
    pooled sites.
    """
    results: list[SiteScores] = []
    for site in sites:
        cases = site.with_modalities(modalities)
        if cases:
            results += baseline_scores(site.name, cases)
    for recipe in recipes:
        config = recipe_config(recipe, modalities, options)
        label = f"{recipe}-{'-'.join(modalities)}"
        results += leave_one_site_out(sites, config, label, work, Thresholds())
        if pooled_k:
            results += pooled_cross_validation(sites, config, label, work, Thresholds(), pooled_k)
    return results


def parse_site(text: str) -> Site:
    """``NAME=DIR[,DIR...]`` (folders of prepared cases) as a :class:`Site`."""
    name, sep, folders = text.partition("=")
    if not sep or not name or not folders:
        raise InputError(f"--site {text!r}: expected NAME=PREPARED_DIR[,PREPARED_DIR...]")
    cases = [c for folder in folders.split(",") for c in load_prepared(Path(folder))]
    return Site(name, tuple(cases))


# The two annotated sites of ../shared/data (its README): folders under the data root.
SHARED_SITES: dict[str, list[str]] = {
    "open-ms": ["open-ms/cross_sectional"],
    "insights-ms": ["insights-ms", "insights-ms-flair-only"],
}


@dataclass(frozen=True)
class FineTuneSplit:
    """Local cases to fine-tune on (the first k of them for each k) and cases to score."""

    name: str
    local: tuple[PreparedCase, ...]
    held_out: tuple[PreparedCase, ...]


def fine_tune_splits(
    cases: Sequence[PreparedCase], max_k: int, seed: int, rotate: bool = False
) -> list[FineTuneSplit]:
    """How a fine-tuning curve uses a site's cases; no case is scored by a model tuned on it.

    Without ``rotate``: one split, the first ``max_k`` of a seeded shuffle to tune on and the
    rest to score. With ``rotate`` (a site of few cases): every case held out in turn, the
    others shuffled to tune on.

    Raises:
        InputError: when a split would leave nothing to score or fewer than ``max_k`` to tune on.
    """
    rng = np.random.default_rng(seed)
    if rotate:
        splits = [
            FineTuneSplit(
                f"without-{held.name}",
                tuple(cases[i] for i in rng.permutation(len(cases)) if cases[i].name != held.name),
                (held,),
            )
            for held in cases
        ]
    else:
        order = tuple(cases[i] for i in rng.permutation(len(cases)))
        splits = [FineTuneSplit("", order[:max_k], order[max_k:])]
    for split in splits:
        if not split.held_out or len(split.local) < max_k:
            raise InputError(
                f"{len(cases)} cases cannot give {max_k} to fine-tune on and one to score"
            )
    return splits


def load_shared_sites(data: Path, prepared: Path) -> list[Site]:
    """Every site of :data:`SHARED_SITES`, prepared once into ``prepared``, and loaded."""
    from mslesion.devtools.prepare import prepare_dataset

    sites = []
    for name, sources in SHARED_SITES.items():
        cases = []
        for source in sources:
            target = prepared / Path(source).name
            prepare_dataset(data / source, target)
            cases += load_prepared(target)
        sites.append(Site(name, tuple(cases)))
    return sites
