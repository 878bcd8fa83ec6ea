"""Leave-one-site-out evaluation of training recipes, beside the FLAIR-threshold baseline.

Sites are folders of cases prepared by ``mslesion prepare`` (serving's preprocessing, model
grid) from ../shared/data: open-ms (3 annotated 3D scans) and insights-ms (9 clinical 2D
scans with T1/T2, plus 5 FLAIR-only). Each recipe is trained on one site and scored on the
other, per case and mean, on the native FLAIR grid. ``--pooled-folds K`` adds K-fold
cross-validation over both sites pooled (each fold holds patients of both sites).

    python scripts/cross_site.py --recipes full --modalities flair,t1 --json docs/results/x.json
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from mslesion.devtools.crosssite import (
    RECIPES,
    RecipeOptions,
    evaluate_sites,
    load_shared_sites,
    markdown_table,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    """Run the recipes; write JSON and print the markdown table."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--recipes", default="full", help=f"comma-separated of {list(RECIPES)}")
    ap.add_argument("--modalities", default="flair,t1")
    ap.add_argument("--prepared", type=Path, default=Path("runs/prepared"))
    ap.add_argument("--work", type=Path, default=Path("runs/cross_site"))
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--lesion-bank", type=Path, default=Path("runs/lesion_bank.npz"))
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--max-epochs", type=int, default=6)  # the shipped models' recipe
    ap.add_argument("--patience", type=int, default=2)  # ... and its early stopping
    ap.add_argument("--max-lesion-voxels", type=int, default=1000)
    ap.add_argument("--synthetic-copies", type=int, default=2)
    ap.add_argument(
        "--pooled-folds", type=int, default=0,
        help="also K-fold cross-validation over both sites pooled (0: off)",
    )  # fmt: skip
    args = ap.parse_args()
    modalities = args.modalities.split(",")
    sites = load_shared_sites(DATA, args.prepared)
    options = RecipeOptions(
        max_epochs=args.max_epochs,
        patience=args.patience,
        seed=args.seed,
        max_lesion_voxels=args.max_lesion_voxels,
        synthetic_copies=args.synthetic_copies,
        lesion_bank=args.lesion_bank,
    )
    results = evaluate_sites(
        sites, args.recipes.split(","), modalities, options, args.work, args.pooled_folds
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "modalities": modalities,
        "options": {k: str(v) for k, v in vars(args).items()},
        "results": [r.model_dump(mode="json") for r in results],
    }
    args.json.write_text(json.dumps(payload, indent=2) + "\n")
    print(markdown_table(results))


if __name__ == "__main__":
    main()
