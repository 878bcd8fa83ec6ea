"""The ``mslesion`` command. Thin: parse arguments, call domain functions, report errors.

Errors: every :class:`~mslesion.services.errors.MSLesionError` ends the command with one
``error: ...`` line on stderr and the error's ``exit_code`` (2); :func:`main` is the one place
that does this. Logging: the product's own INFO lines, third-party libraries at WARNING
unless ``--verbose`` (:func:`configure_logging`), the no-PHI policy always.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mslesion.services.config import Provider, get_settings
from mslesion.services.errors import InputError, MSLesionError
from mslesion.services.logpolicy import apply_log_policy
from mslesion.services.segmentation.cascade import Method
from mslesion.services.segmentation.inputs import Standardisation
from mslesion.services.store.enums import Role

if TYPE_CHECKING:
    from mslesion.models.training.trainer import TrainConfig
    from mslesion.services.segmentation.cascade import CascadeModel
    from mslesion.services.segmentation.catalogue import ModelSet
    from mslesion.services.store.database import Database

HELP = "MS lesion segmentation: command-line tools and the PACS node."
app = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP)
log = logging.getLogger("mslesion")

QUIET_LIBRARIES = ("pynetdicom", "uvicorn", "celery", "alembic")
"""Libraries whose INFO lines (one per association, request, task, migration step) are
hidden unless ``--verbose``; other libraries follow the root logger (WARNING by default)."""
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def configure_logging(*, verbose: bool) -> None:
    """Log to stderr: ``mslesion`` at INFO, everything else at WARNING (INFO when verbose).

    The no-PHI policy (:func:`~mslesion.services.logpolicy.apply_log_policy`) is applied
    last, so its pinned loggers stay at WARNING even when verbose.
    """
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
    library_level = logging.INFO if verbose else logging.WARNING
    root.setLevel(library_level)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(library_level)
        _inherit_children(name)
    log.setLevel(logging.INFO)
    apply_log_policy()


def _inherit_children(name: str) -> None:
    """Make loggers below ``name`` follow it (a library may have set their levels itself)."""
    for child, logger in logging.root.manager.loggerDict.items():
        if child.startswith(name + ".") and isinstance(logger, logging.Logger):
            logger.setLevel(logging.NOTSET)


@app.callback()
def _options(
    ctx: typer.Context,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="INFO lines of every library too")
    ] = False,
) -> None:
    configure_logging(verbose=verbose)
    ctx.obj = {"verbose": verbose}


def _database() -> Database:
    """The node's database as the settings name it: the one handle a command uses."""
    from mslesion.services.store.database import Database

    return Database(get_settings().resolved_database_url())


def _models(model_dir: Path | None, provider: Provider | None) -> ModelSet:
    """The catalogue to choose from: ``--model`` (one model or a folder of them) or settings."""
    from mslesion.services.segmentation.catalogue import ModelSet

    s = get_settings()
    if provider is not None:
        s = s.model_copy(update={"provider": provider})
    return ModelSet.from_settings(s, model_dir)


def _model_for(models: ModelSet, given: list[str]) -> CascadeModel:
    """The richest model the given modalities support; a single model folder as it is."""
    if len(models.folders) == 1:
        return models.get(models.folders[0])
    choice = models.choose(given)
    log.info("model choice: %s", choice.reason)
    return models.get(choice.folder)


@app.command()
def infer(
    flair: Annotated[Path, typer.Option(help="FLAIR NIfTI (co-registered, skull-stripped, 1 mm)")],
    out: Annotated[Path, typer.Option(help="binary lesion mask to write (NIfTI)")],
    t1: Annotated[Path | None, typer.Option(help="T1 NIfTI on the FLAIR's grid")] = None,
    t2: Annotated[Path | None, typer.Option(help="T2 NIfTI on the FLAIR's grid")] = None,
    model: Annotated[
        Path | None,
        typer.Option(help="model folder, or a folder of them (default: the shipped models)"),
    ] = None,
    prob: Annotated[Path | None, typer.Option(help="also write the probability map")] = None,
    report: Annotated[Path | None, typer.Option(help="also write the lesion report (JSON)")] = None,
    provider: Annotated[Provider | None, typer.Option(help="ONNX Runtime provider")] = None,
    method: Annotated[
        Method, typer.Option(help="dense (serving) or patch (reference)")
    ] = Method.DENSE,
) -> None:
    """Segment MS lesions in preprocessed NIfTI images; outputs keep the input's grid."""
    from mslesion.services.segmentation.infer import (
        load_inputs,
        segment_volumes,
        white_matter_prior,
        write_segmentation,
    )

    given = {k: v for k, v in {"flair": flair, "t1": t1, "t2": t2}.items() if v is not None}
    cascade = _model_for(_models(model, provider), list(given))
    volumes = load_inputs(given, cascade)
    prior = white_matter_prior(flair, required=cascade.manifest.needs_wm_prior)
    seg = segment_volumes(volumes, cascade, method, wm_prior=prior)
    write_segmentation(seg, out, prob)
    summary = {
        "model": f"{cascade.manifest.name} {cascade.manifest.version}",
        "provider": seg.provider,
        "restricted_to_white_matter": seg.restricted_to_white_matter,
        "timings_s": {k: round(v, 2) for k, v in seg.timings_s.items()},
        **seg.report.model_dump(),
    }
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(summary, indent=2) + "\n")
    typer.echo(
        f"{seg.report.lesion_count} lesions, {seg.report.total_volume_ml:.2f} ml "
        f"({seg.provider}, {seg.timings_s['total_s']:.1f} s) -> {out}"
    )


@app.command()
def segment(
    study: Annotated[Path, typer.Argument(help="DICOM study: a folder or a .zip")],
    out: Annotated[Path, typer.Option(help="output folder (must not exist or be empty)")],
    model: Annotated[
        Path | None,
        typer.Option(help="model folder, or a folder of them (default: the shipped models)"),
    ] = None,
    provider: Annotated[Provider | None, typer.Option(help="ONNX Runtime provider")] = None,
) -> None:
    """Raw DICOM study -> DICOM SEG, TID 1500 SR, JSON report and PNG montage."""
    from tqdm import tqdm

    from mslesion.services.pipeline import segment_study

    stages = ["read", "select", "assemble", "preprocess", "cascade", "postprocess", "outputs"]
    with tqdm(total=len(stages), desc="segment", unit="stage") as bar:

        def on_stage(name: str) -> None:
            bar.set_postfix_str(name)
            bar.update(1 if bar.n < len(stages) and name != "read" else 0)

        result = segment_study(study, out, _models(model, provider), get_settings(), on_stage)
        bar.update(len(stages) - bar.n)
    r = result.report
    typer.echo(
        f"{r.lesion_count} lesions, {r.total_lesion_volume_ml:.2f} ml; "
        f"brain {r.brain_volume_ml:.0f} ml -> {out}"
    )
    for stage, seconds in result.timings_s.items():
        typer.echo(f"  {stage:<28} {seconds:7.2f} s")


@app.command()
def compare(
    prior: Annotated[Path, typer.Argument(help="the earlier DICOM study: a folder or a .zip")],
    current: Annotated[Path, typer.Argument(help="the later DICOM study of the same patient")],
    out: Annotated[Path, typer.Option(help="output folder (must not exist or be empty)")],
    model: Annotated[
        Path | None,
        typer.Option(help="model folder, or a folder of them (default: the shipped models)"),
    ] = None,
    provider: Annotated[Provider | None, typer.Option(help="ONNX Runtime provider")] = None,
) -> None:
    """Follow-up reading: new, enlarging, stable and shrinking lesions between two studies.

    Both studies are analysed (OUT/prior, OUT/current) by the same model, the richest that
    the series both studies hold support (a change between two models' readings is not a
    change of the brain); the prior is registered onto the current one and the change
    outputs (SEG per category, SR with tracking UIDs, secondary capture, JSON, PNG) go to
    OUT/followup.
    """
    from mslesion.services.dicom.reader import read_study
    from mslesion.services.dicom.selection import select_series
    from mslesion.services.followup.service import compare_results
    from mslesion.services.followup.sources import flair_sources
    from mslesion.services.pipeline import segment_study

    settings = get_settings()
    if out.exists() and any(out.iterdir()):
        raise InputError(f"{out}: output folder exists and is not empty")
    models = _models(model, provider)
    shared = set.intersection(
        *(set(select_series(read_study(p), required=("flair",)).series) for p in (prior, current))
    )
    shared_model = _model_for(models, sorted(shared))
    typer.echo(
        f"both studies analysed by {shared_model.manifest.name} (series both hold: "
        f"{', '.join(sorted(shared))})"
    )
    results = {}
    for name, study in (("prior", prior), ("current", current)):
        results[name] = segment_study(study, out / name, shared_model, settings)
        typer.echo(
            f"{name}: {results[name].report.lesion_count} lesions, "
            f"{results[name].report.total_lesion_volume_ml:.2f} ml"
        )
    outcome = compare_results(
        out / "prior",
        out / "current",
        out / "followup",
        settings,
        current_sources=flair_sources(current, results["current"].report),
        prior_sources=flair_sources(prior, results["prior"].report),
    )
    report = outcome.analysis.report
    counts = ", ".join(f"{n} {c.value}" for c, n in report.counts.items())
    typer.echo(f"follow-up: {counts}; MRI activity: {'yes' if report.activity else 'no'}")
    typer.echo(f"  change detector: {report.change_detector or 'off (lesion volumes only)'}")
    typer.echo(f"  -> {out / 'followup'}")


@app.command()
def evaluate(
    pred: Annotated[list[Path], typer.Option(help="predicted mask(s), one per case")],
    truth: Annotated[list[Path], typer.Option(help="reference mask(s), same order")],
    json_out: Annotated[Path | None, typer.Option("--json", help="write metrics as JSON")] = None,
) -> None:
    """Dice, lesion-wise TPR/precision/F1, volume difference and correlation."""
    from mslesion.devtools.evaluation_io import evaluate_files
    from mslesion.devtools.report_table import format_table

    if len(pred) != len(truth):
        raise InputError(f"{len(pred)} --pred but {len(truth)} --truth: give one of each per case")
    summary = evaluate_files(list(zip(pred, truth, strict=True)))
    typer.echo(format_table(summary))
    if json_out is not None:
        json_out.write_text(summary.model_dump_json(indent=2) + "\n")


@app.command()
def train(
    data_dir: Annotated[
        list[Path],
        typer.Argument(help="dataset folder(s), one sub-folder per subject (see `prepare`)"),
    ],
    out: Annotated[Path, typer.Option(help="model folder to write")],
    modalities: Annotated[str, typer.Option(help="input channels, FLAIR first")] = "flair,t1",
    init: Annotated[
        Path | None, typer.Option(help="fine-tune this model (dense layers only)")
    ] = None,
    subjects: Annotated[
        str | None, typer.Option(help="comma-separated subset of subject folders")
    ] = None,
    seed: int = 42,
    max_epochs: int = 30,
    patience: int = 5,
    batch_size: int = 128,
    max_lesion_voxels: Annotated[int, typer.Option(help="per subject and net (0: all)")] = 10_000,
    lesion_balance: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="share (0-1) of the capped lesion-voxel draw spread evenly over the lesions, "
            "so small lesions are sampled too (0: uniform over voxels, the seed's draw)",
        ),
    ] = 0.0,
    synthetic_copies: Annotated[
        int, typer.Option(help="copies per subject with real lesion shapes pasted in")
    ] = 0,
    lesions_per_copy: int = 25,
    lesion_flair_contrast: Annotated[
        str | None,
        typer.Option(
            help="range of a pasted lesion's FLAIR, × the normal white matter's: 'low,high' "
            "(default 1.35,1.8)"
        ),
    ] = None,
    lesion_t1_contrast: Annotated[
        str | None,
        typer.Option(
            help="range of a pasted lesion's T1, × the normal white matter's: 'low,high' "
            "(default 0.55,0.8; 1.0: as bright as white matter)"
        ),
    ] = None,
    clinical_simulation: Annotated[
        float, typer.Option(help="probability that a synthetic copy gets 2D thick slices + bias")
    ] = 0.0,
    regrid: Annotated[
        float,
        typer.Option(
            help="probability that a synthetic copy is re-gridded (rotation < 3°, "
            "sub-voxel shift, serving's B-spline) as served scans are"
        ),
    ] = 0.0,
    lesion_bank: Annotated[
        Path | None,
        typer.Option(help="lesion bank .npz (see models/shipped/flair_t1/MODEL_CARD.md)"),
    ] = None,
    standardisation: Annotated[
        Standardisation, typer.Option(help="intensity standardisation (wm-peak needs `prepare`)")
    ] = Standardisation.ZSCORE,
    context: Annotated[str, typer.Option(help="context channels, e.g. wm_prior")] = "",
    smoothing: Annotated[
        float | None,
        typer.Option(
            help="σ (voxels) of the in-brain Gaussian before standardisation "
            "(default 0; with --init, the init model's)"
        ),
    ] = None,
    contrast_gamma: Annotated[
        float, typer.Option(help="max |log gamma| of synthetic copies' contrast change (0: off)")
    ] = 0.0,
    candidate_threshold: Annotated[
        float | None,
        typer.Option(help="standardised FLAIR above which net 1 scores (default 0.5 z / 0.1)"),
    ] = None,
    t_bin: float = 0.5,
    l_min: int = 10,
    name: str = "custom",
    version: str = "0.1.0",
    quiet: bool = False,
) -> None:
    """Train (or fine-tune) the two-net cascade and export it to ONNX with a manifest."""
    _require_train_extra()
    from mslesion.models.training.cascade_train import CascadeTrainConfig
    from mslesion.models.training.lesion_bank import DEFAULT_CONTRAST
    from mslesion.models.training.run import run_training
    from mslesion.services.segmentation.inputs import ContextChannel
    from mslesion.services.segmentation.manifest import Thresholds

    if candidate_threshold is None:
        candidate_threshold = 0.5 if standardisation is Standardisation.ZSCORE else 0.1
    if smoothing is None:
        smoothing = 0.0 if init is None else _init_smoothing(init)
    config = CascadeTrainConfig(
        modalities=[m.strip().lower() for m in modalities.split(",") if m.strip()],
        train=_train_config(batch_size, max_epochs, patience, seed, quiet=quiet),
        max_lesion_voxels=max_lesion_voxels or None,
        lesion_balance=lesion_balance,
        synthetic_copies=synthetic_copies,
        lesions_per_copy=lesions_per_copy,
        lesion_flair_contrast=_contrast_range(lesion_flair_contrast, "--lesion-flair-contrast")
        or DEFAULT_CONTRAST["flair"],
        lesion_t1_contrast=_contrast_range(lesion_t1_contrast, "--lesion-t1-contrast")
        or DEFAULT_CONTRAST["t1"],
        lesion_bank=lesion_bank,
        clinical_simulation=clinical_simulation,
        regrid=regrid,
        init=init,
        contrast_gamma=contrast_gamma,
        standardisation=standardisation,
        smoothing=smoothing,
        context=tuple(ContextChannel(c.strip()) for c in context.split(",") if c.strip()),
        candidate_flair_z=candidate_threshold,
    )
    manifest = run_training(
        data_dir,
        out,
        config,
        Thresholds(t_bin=t_bin, l_min=l_min),
        name=name,
        version=version,
        subjects=subjects.split(",") if subjects else None,
    )
    typer.echo(f"model {manifest.name} {manifest.version} written to {out}")


@app.command("train-change")
def train_change(
    data_dir: Annotated[
        list[Path],
        typer.Argument(help="dataset folder(s) prepared by `prepare` (FLAIR and lesion mask)"),
    ],
    out: Annotated[Path, typer.Option(help="change-detector model folder to write")],
    lesion_bank: Annotated[Path, typer.Option(help="lesion bank .npz (`lesion-bank`)")],
    pairs_per_subject: Annotated[int, typer.Option(help="synthetic visit pairs per scan")] = 3,
    seed: int = 42,
    max_epochs: int = 6,
    patience: int = 2,
    batch_size: int = 256,
    max_change_voxels: Annotated[int, typer.Option(help="per pair and net")] = 3000,
    name: str = "ms-change-flair",
    version: str = "0.1.0",
    quiet: bool = False,
) -> None:
    """Train the follow-up change detector (new/enlarging lesions) on synthetic visit pairs."""
    _require_train_extra()
    from mslesion.models.training.change_train import ChangeTrainConfig, train_change_detector
    from mslesion.models.training.dataset import load_dataset

    config = ChangeTrainConfig(
        lesion_bank=lesion_bank,
        train=_train_config(batch_size, max_epochs, patience, seed, quiet=quiet),
        pairs_per_subject=pairs_per_subject,
        max_change_voxels=max_change_voxels,
    )
    subjects = [s for d in data_dir for s in load_dataset(d, ["flair"])]
    manifest = train_change_detector(
        subjects,
        config,
        out,
        name=name,
        version=version,
        data_description=",".join(str(d) for d in data_dir),
    )
    typer.echo(f"change detector {manifest.name} {manifest.version} written to {out}")


@app.command("prepare")
def prepare_cmd(
    source: Annotated[
        Path, typer.Argument(help="dataset: <case>/FLAIR[,T1,T2,lesion_mask].nii.gz, any geometry")
    ],
    out: Annotated[Path, typer.Option(help="folder for the prepared cases")],
) -> None:
    """Bring an annotated dataset onto the model grid with the serving preprocessing."""
    from mslesion.devtools.prepare import prepare_dataset

    cases = prepare_dataset(source, out)
    typer.echo(f"{len(cases)} cases prepared in {out}")


@app.command("cross-site")
def cross_site(
    site: Annotated[
        list[str], typer.Option(help="NAME=PREPARED_DIR[,PREPARED_DIR...]; two or more sites")
    ],
    json_out: Annotated[Path, typer.Option("--json", help="write every score as JSON")],
    recipe: Annotated[str, typer.Option(help="comma-separated training recipes")] = "full",
    modalities: Annotated[str, typer.Option(help="model inputs, FLAIR first")] = "flair,t1",
    work: Annotated[Path, typer.Option(help="where fold models are kept")] = Path(
        "runs/cross_site"
    ),
    lesion_bank: Annotated[Path | None, typer.Option(help="lesion bank .npz")] = None,
    max_epochs: int = 6,
    seed: int = 42,
    max_lesion_voxels: int = 1000,
    synthetic_copies: int = 2,
    pooled_folds: Annotated[
        int, typer.Option(help="also K-fold cross-validation over the pooled sites (0: off)")
    ] = 0,
) -> None:
    """Leave-one-site-out: train each recipe on the other sites, score on the held-out one."""
    from mslesion.devtools.crosssite import (
        RecipeOptions,
        evaluate_sites,
        markdown_table,
        parse_site,
    )

    sites = [parse_site(text) for text in site]
    if len(sites) < 2:
        raise InputError("cross-site evaluation needs at least two --site")
    options = RecipeOptions(
        max_epochs=max_epochs,
        seed=seed,
        max_lesion_voxels=max_lesion_voxels,
        synthetic_copies=synthetic_copies,
        lesion_bank=lesion_bank,
    )
    wanted = [m.strip().lower() for m in modalities.split(",") if m.strip()]
    results = evaluate_sites(sites, recipe.split(","), wanted, options, work, pooled_folds)
    json_out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"modalities": wanted, "results": [r.model_dump(mode="json") for r in results]}
    json_out.write_text(json.dumps(payload, indent=2) + "\n")
    typer.echo(markdown_table(results))


@app.command("score")
def score_cmd(
    cases: Annotated[
        list[Path], typer.Argument(help="folder(s) of prepared cases (see `prepare`)")
    ],
    model: Annotated[Path, typer.Option(help="model folder to score")],
    json_out: Annotated[Path | None, typer.Option("--json", help="write scores as JSON")] = None,
    site: Annotated[str, typer.Option(help="name of the site in the table")] = "local",
) -> None:
    """Score a model on a site's annotated cases, beside the FLAIR-threshold baseline."""
    from mslesion.devtools.crosssite import (
        baseline_scores,
        markdown_table,
        score_model,
        summaries,
    )
    from mslesion.devtools.prepare import load_prepared

    prepared = [c for folder in cases for c in load_prepared(folder)]
    modalities = _model_modalities(model)
    usable = [c for c in prepared if set(modalities) <= set(c.modalities)]
    if not usable:
        raise InputError(f"no prepared case has the model's modalities {modalities}")
    results = baseline_scores(site, usable)
    results += summaries(model.name, site, score_model(model, usable))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"model": str(model), "results": [r.model_dump(mode="json") for r in results]}
        json_out.write_text(json.dumps(payload, indent=2) + "\n")
    typer.echo(markdown_table(results))


def _require_train_extra() -> None:
    """:class:`MSLesionError` naming the extra when torch (the [train] extra) is missing."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise MSLesionError(
            f"training needs the [train] extra: pip install 'mslesion[train]' ({exc})"
        ) from exc


def _train_config(
    batch_size: int, max_epochs: int, patience: int, seed: int, *, quiet: bool
) -> TrainConfig:
    """One net's training hyper-parameters as the training commands take them."""
    from mslesion.models.training.trainer import TrainConfig

    return TrainConfig(
        batch_size=batch_size,
        max_epochs=max_epochs,
        patience=patience,
        seed=seed,
        progress=not quiet,
    )


def _contrast_range(text: str | None, option: str) -> tuple[float, float] | None:
    """'low,high' as two positive floats, low <= high (None when not given).

    Raises:
        typer.BadParameter: anything else.
    """
    if text is None:
        return None
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"{option} {text!r}: expected 'low,high', e.g. 1.35,1.8") from None
    if not 0 < low <= high:
        raise typer.BadParameter(f"{option} {text!r}: need 0 < low <= high")
    return low, high


def _init_smoothing(model: Path) -> float:
    """The input smoothing of the model a fine-tuning starts from."""
    from mslesion.services.segmentation.manifest import load_manifest

    return load_manifest(model, verify=False).normalisation.smoothing_voxels


def _model_modalities(model: Path) -> list[str]:
    """The modalities a model folder takes (lower case)."""
    from mslesion.services.segmentation.manifest import load_manifest

    return [m.lower() for m in load_manifest(model, verify=False).modalities]


@app.command("lesion-bank")
def lesion_bank_cmd(
    masks_dir: Annotated[
        Path,
        typer.Argument(help="one folder per patient with consensus_gt.nii.gz and brainmask.nii.gz"),
    ],
    out: Annotated[Path, typer.Option(help="bank file to write (.npz)")],
    exclude: Annotated[
        str, typer.Option(help="comma-separated patients never used (the training patients)")
    ] = "patient07,patient19,patient26",
) -> None:
    """Harvest real lesion shapes for lesion-synthesis augmentation (``train --lesion-bank``)."""
    from mslesion.models.training.lesion_bank import build_lesion_bank

    if not masks_dir.is_dir():
        raise InputError(f"{masks_dir} is not a folder (one sub-folder per patient expected)")
    bank = build_lesion_bank(masks_dir, exclude=frozenset(e for e in exclude.split(",") if e))
    bank.save(out)
    typer.echo(f"{len(bank)} lesions from {len(set(bank.patient_of))} patients -> {out}")


@app.command("nifti2dicom")
def nifti2dicom(
    out: Annotated[
        Path, typer.Argument(help="folder to write the study into (one sub-folder per series)")
    ],
    flair: Annotated[Path, typer.Option(help="FLAIR NIfTI")],
    t1: Annotated[Path | None, typer.Option(help="T1-weighted NIfTI")] = None,
    t2: Annotated[Path | None, typer.Option(help="T2-weighted NIfTI")] = None,
    patient_id: str = "ANON0001",
    patient_name: str = "ANONYMOUS^PATIENT",
    study_date: Annotated[str, typer.Option(help="YYYYMMDD")] = "",
) -> None:
    """Test tool: wrap NIfTI volumes into one standard DICOM MR study (one series each)."""
    from mslesion.devtools.dicom_writer import StudyInfo, write_study

    niftis = {k: v for k, v in {"FLAIR": flair, "T1W": t1, "T2W": t2}.items() if v is not None}
    info = StudyInfo(
        patient_id=patient_id,
        patient_name=patient_name,
        **({"study_date": study_date} if study_date else {}),
    )
    for role, files in write_study(niftis, out, info).items():
        typer.echo(f"{role}: {len(files)} files in {files[0].parent}")


@app.command()
def phantom(
    out: Annotated[Path, typer.Argument(help="folder to write subject folders into")],
    subjects: int = 1,
    seed: int = 0,
) -> None:
    """Write synthetic brain-like phantoms with lesions (FLAIR/T1/T2/lesion_mask NIfTI)."""
    from mslesion.devtools.phantom import write_phantom_dataset

    for folder in write_phantom_dataset(out, n_subjects=subjects, seed=seed):
        typer.echo(str(folder))


@app.command()
def demo(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="where the demo writes its files")] = Path("demo-out"),
) -> None:
    """The whole node on this machine: a synthetic study in by C-STORE, results out by HTTP.

    SEG, SR, report and picture come out through the authorised HTTP API (embedded SQLite,
    in-process worker).
    """
    from mslesion.demo import run_demo

    if not (ctx.obj or {}).get("verbose"):
        log.setLevel(logging.WARNING)  # the demo tells each stage and the result itself
    run_demo(get_settings(), out, echo=typer.echo)


# --- the PACS node ---------------------------------------------------------------------------

keys_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Manage API keys.")
app.add_typer(keys_app, name="keys")


@app.command()
def migrate() -> None:
    """Bring the database schema to the newest revision (Alembic)."""
    _database().migrate()
    typer.echo("database schema is up to date")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="who holds the key (shown in the audit trail)")],
    role: Annotated[Role, typer.Option(help="what the key may do")] = Role.READER,
) -> None:
    """Create an API key; only its hash is stored, so the key is printed once, here."""
    from mslesion.services.store.repositories import keys

    with _database().session() as session:
        key = keys.create_key(session, name, role)
    typer.echo(key)


@keys_app.command("list")
def keys_list() -> None:
    """List API keys (names, roles, creation and revocation; never the keys)."""
    from mslesion.services.store.repositories import keys

    with _database().session() as session:
        for row in keys.list_keys(session):
            state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
            typer.echo(f"{row.name}\t{row.role.value}\t{row.created_at:%Y-%m-%d}\t{state}")


@keys_app.command("revoke")
def keys_revoke(name: Annotated[str, typer.Argument(help="name of the key")]) -> None:
    """Revoke an API key at once."""
    from mslesion.services.store.repositories import keys

    with _database().session() as session:
        if not keys.revoke(session, name):
            raise InputError(f"no key named {name!r}")
    typer.echo(f"revoked {name}")


@app.command()
def serve() -> None:
    """Everything on one machine: gateway, DICOM listener and an in-process worker."""
    from mslesion.node import Node, Parts, run_until_signal

    settings = get_settings()
    node = Node(settings, Parts())
    node.start(migrate=True, create_admin_key=True)
    _announce(node)
    run_until_signal(node)


@app.command()
def gateway() -> None:
    """The HTTP gateway (DICOMweb, jobs, results, lesion load); jobs go to Celery."""
    _run_node(http=True, dicom=False)


@app.command()
def listener() -> None:
    """The DICOM C-STORE listener and the quiet-study monitor; jobs go to Celery."""
    _run_node(http=False, dicom=True)


def _run_node(*, http: bool, dicom: bool) -> None:
    """Run one part of the node until a signal (no migration, no key: ``serve`` does those)."""
    from mslesion.node import Node, Parts, run_until_signal

    node = Node(get_settings(), Parts(http=http, dicom=dicom, in_process_worker=False))
    node.start(migrate=False, create_admin_key=False)
    _announce(node)
    run_until_signal(node)


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="jobs at once (1 per GPU)")] = 1,
    loglevel: Annotated[
        str | None, typer.Option(help="Celery log level (default: WARNING, INFO with -v)")
    ] = None,
) -> None:
    """A Celery worker: runs jobs and forwards results (needs MSLESION_BROKER_URL)."""
    from mslesion.node import celery_dispatcher
    from mslesion.worker.celery_app import create_celery

    settings = get_settings()
    celery_dispatcher(settings)  # fails clearly when no broker is configured
    # Celery sets up logging itself: it gets the level configure_logging chose for it.
    level = loglevel or logging.getLevelName(logging.getLogger("celery").getEffectiveLevel())
    create_celery(settings).worker_main(
        ["worker", f"--concurrency={concurrency}", f"--loglevel={level}", "--pool=prefork"]
    )


def _announce(node: object) -> None:
    from mslesion.node import Node

    assert isinstance(node, Node)
    s = node.settings
    if node.http_port is not None:
        from mslesion.services.tls import http_scheme

        scheme = http_scheme(s)
        typer.echo(f"gateway: {scheme}://{s.http_host}:{node.http_port}  (API docs at /docs)")
    if node.dicom_port is not None:
        typer.echo(f"DICOM listener: AE {s.ae_title} on port {node.dicom_port}")
    if node.admin_key is not None:
        typer.echo(f"admin API key (shown once, store it safely): {node.admin_key}")


def main() -> None:
    """Entry point: a domain error becomes one ``error: ...`` line and its exit status."""
    try:
        app()
    except MSLesionError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
