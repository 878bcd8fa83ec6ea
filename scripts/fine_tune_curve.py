"""Fine-tuning for a new site, measured: a model of one site, fine-tuned on k scans of another.

The base model is the cross-site fold trained without the site (``scripts/cross_site.py``)
with ``--recipe`` (default ``full``; ``full+smooth`` for the 2.1.0 recipe, whose smoothing the
fine-tuning must keep). It is fine-tuned with ``mslesion train --init`` (dense layers only,
same recipe) on the first k = 1, 2, 4 patients of ``--site`` (default insights-ms) in a fixed
shuffled order, and every model (k = 0 included) is scored on the same held-out patients:
those never used for any k. ``--rotate`` (for a site of few patients, e.g. open-ms's 3) holds
out every patient in turn, fine-tunes on the first k of the others, and pools the held-out
scores per k.

    python scripts/fine_tune_curve.py --json docs/results/fine_tune_curve.json
    python scripts/fine_tune_curve.py --recipe full+smooth --site runs/prepared/cross_sectional \\
        --base runs/xs/full+smooth-flair-t1/without-open-ms --ks 1,2 --rotate --json ...
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from mslesion.devtools.crosssite import (
    SHARED_SITES,
    OperatingPoint,
    RecipeOptions,
    fine_tune_splits,
    markdown_table,
    recipe_config,
    score_model,
    summaries,
)
from mslesion.devtools.metrics import CaseMetrics
from mslesion.devtools.prepare import PreparedCase, load_prepared
from mslesion.models.training.cascade_train import CascadeTrainConfig
from mslesion.models.training.dataset import load_subjects
from mslesion.models.training.run import train_and_export
from mslesion.services.segmentation.manifest import Thresholds

MODALITIES = ["flair", "t1"]


def main() -> None:
    """Fine-tune for each k and score on the held-out patients."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--recipe", default="full", help="the base fold's cross-site recipe")
    ap.add_argument("--base", type=Path, help="default: that recipe's fold without --site")
    ap.add_argument("--site", type=Path, default=Path("runs/prepared/insights-ms"))
    ap.add_argument("--work", type=Path, default=Path("runs/fine_tune"))
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--lesion-bank", type=Path, default=Path("runs/lesion_bank.npz"))
    ap.add_argument("--ks", default="1,2,4")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument(
        "--rotate", action="store_true",
        help="hold out every patient in turn (for a site of few patients)",
    )  # fmt: skip
    args = ap.parse_args()
    site = _site_name(args.site)
    base = args.base or Path(f"runs/cross_site/{args.recipe}-flair-t1/without-{site}")
    cases = [c for c in load_prepared(args.site) if set(MODALITIES) <= set(c.modalities)]
    ks = [int(k) for k in args.ks.split(",")]
    config = recipe_config(
        args.recipe, MODALITIES, RecipeOptions(seed=args.seed, lesion_bank=args.lesion_bank)
    )
    config = dataclasses.replace(config, init=base)
    splits = fine_tune_splits(cases, max(ks), args.seed, args.rotate)
    per_k: dict[int, dict[OperatingPoint, list[CaseMetrics]]] = {}
    for split in splits:
        _add(per_k, 0, score_model(base, split.held_out))
        for k in ks:
            folder = args.work / split.name / f"k{k}"
            _fine_tune(config, split.local[:k], args.site, folder, k)
            _add(per_k, k, score_model(folder, split.held_out))
    results = [
        r
        for k, scores in sorted(per_k.items())
        for r in summaries(f"k={k}" if k else f"k=0 (without {site})", site, scores)
    ]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "base": str(base),
        "recipe": args.recipe,
        "splits": [
            {
                "fine_tuned_on": [c.name for c in split.local[: max(ks)]],
                "held_out": [c.name for c in split.held_out],
            }
            for split in splits
        ],
        "results": [r.model_dump(mode="json") for r in results],
    }
    args.json.write_text(json.dumps(payload, indent=2) + "\n")
    print(markdown_table(results))


def _fine_tune(
    config: CascadeTrainConfig, local: Sequence[PreparedCase], site: Path, folder: Path, k: int
) -> None:
    """Fine-tune the base (``config.init``) on ``local``, unless ``folder`` holds it already."""
    if (folder / "manifest.json").is_file():
        return
    subjects = load_subjects([c.folder for c in local], MODALITIES)
    train_and_export(
        subjects, f"{site} first {k}", folder, config, Thresholds(),
        name=f"fine-tuned-k{k}", version="fine-tune",
    )  # fmt: skip


def _site_name(prepared: Path) -> str:
    """The shared site a prepared folder belongs to (``cross_sectional`` is open-ms)."""
    for name, sources in SHARED_SITES.items():
        if prepared.name in {Path(source).name for source in sources}:
            return name
    return prepared.name


def _add(
    per_k: dict[int, dict[OperatingPoint, list[CaseMetrics]]],
    k: int,
    scores: dict[OperatingPoint, list[CaseMetrics]],
) -> None:
    """Pool one split's per-case scores into k's."""
    pooled = per_k.setdefault(k, {})
    for point, cases in scores.items():
        pooled.setdefault(point, []).extend(cases)


if __name__ == "__main__":
    main()
