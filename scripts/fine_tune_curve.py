"""Fine-tuning for a new site, measured: a model of one site, fine-tuned on k scans of another.

The base model is the cross-site fold trained on open-ms alone (``scripts/cross_site.py``) with
``--recipe`` (default ``full``; ``full+smooth`` for the 2.1.0 recipe, whose smoothing the
fine-tuning must keep). It is fine-tuned with ``mslesion train --init`` (dense layers only,
same recipe) on the first
k = 1, 2, 4 insights-ms patients of a fixed shuffled order, and every model (k = 0 included)
is scored on the same held-out insights-ms patients: those never used for any k.

    python scripts/fine_tune_curve.py --json docs/results/fine_tune_curve.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

import numpy as np

from mslesion.devtools.crosssite import (
    RecipeOptions,
    markdown_table,
    recipe_config,
    score_model,
    summaries,
)
from mslesion.devtools.prepare import load_prepared
from mslesion.models.training.dataset import load_subjects
from mslesion.models.training.run import train_and_export
from mslesion.services.segmentation.manifest import Thresholds


def main() -> None:
    """Fine-tune for each k and score on the held-out patients."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--recipe", default="full", help="the base fold's cross-site recipe")
    ap.add_argument("--base", type=Path, help="default: that recipe's open-ms-only fold")
    ap.add_argument("--site", type=Path, default=Path("runs/prepared/insights-ms"))
    ap.add_argument("--work", type=Path, default=Path("runs/fine_tune"))
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--lesion-bank", type=Path, default=Path("runs/lesion_bank.npz"))
    ap.add_argument("--ks", default="1,2,4")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    modalities = ["flair", "t1"]
    base = args.base or Path(f"runs/cross_site/{args.recipe}-flair-t1/without-insights-ms")
    cases = [c for c in load_prepared(args.site) if set(modalities) <= set(c.modalities)]
    order = [cases[i] for i in np.random.default_rng(args.seed).permutation(len(cases))]
    ks = [int(k) for k in args.ks.split(",")]
    held_out = order[max(ks) :]
    options = RecipeOptions(seed=args.seed, lesion_bank=args.lesion_bank)
    results = summaries("k=0 (open-ms only)", "insights-ms", score_model(base, held_out))
    for k in ks:
        folder = args.work / f"k{k}"
        if not (folder / "manifest.json").is_file():
            config = recipe_config(args.recipe, modalities, options)
            config = dataclasses.replace(config, init=base)
            subjects = load_subjects([c.folder for c in order[:k]], modalities)
            train_and_export(
                subjects, f"{args.site} first {k}", folder, config, Thresholds(),
                name=f"fine-tuned-k{k}", version="fine-tune",
            )  # fmt: skip
        results += summaries(f"k={k}", "insights-ms", score_model(folder, held_out))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "base": str(base),
        "recipe": args.recipe,
        "fine_tuned_on": [c.name for c in order[: max(ks)]],
        "held_out": [c.name for c in held_out],
        "results": [r.model_dump(mode="json") for r in results],
    }
    args.json.write_text(json.dumps(payload, indent=2) + "\n")
    print(markdown_table(results))


if __name__ == "__main__":
    main()
