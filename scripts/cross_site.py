"""Leave-one-site-out evaluation of training recipes, beside the FLAIR-threshold baseline.

Sites are folders of cases prepared by ``mslesion prepare`` (serving's preprocessing, model
grid) from ../shared/data: open-ms (3 annotated 3D scans) and insights-ms (9 clinical 2D
scans with T1/T2, plus 5 FLAIR-only). Each recipe is trained on one site and scored on the
other, per case and mean, on the native FLAIR grid.

    python scripts/cross_site.py --recipes full --modalities flair,t1 --json docs/results/x.json
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from mslesion.devtools.crosssite import (
    Site,
    leave_one_site_out,
    markdown_table,
    score_baseline,
    summaries,
)
from mslesion.devtools.prepare import load_prepared, prepare_dataset
from mslesion.models.training.cascade_train import CascadeTrainConfig
from mslesion.models.training.trainer import TrainConfig
from mslesion.services.segmentation.inputs import ContextChannel, Standardisation
from mslesion.services.segmentation.manifest import Thresholds

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SITES = {
    "open-ms": ["open-ms/cross_sectional"],
    "insights-ms": ["insights-ms", "insights-ms-flair-only"],
}
# name -> (standardisation, context, contrast_gamma, candidate threshold on channel 0)
RECIPES = {
    "zscore": (Standardisation.ZSCORE, (), 0.0, 0.5),
    "wm-peak": (Standardisation.WM_PEAK, (), 0.0, 0.1),
    "wm-peak+context": (Standardisation.WM_PEAK, (ContextChannel.WM_PRIOR,), 0.0, 0.1),
    "full": (Standardisation.WM_PEAK, (ContextChannel.WM_PRIOR,), 0.4, 0.1),
}


def recipe_config(name: str, modalities: list[str], args: argparse.Namespace) -> CascadeTrainConfig:
    """The training options of one recipe (everything else shared)."""
    standardisation, context, gamma, candidate = RECIPES[name]
    return CascadeTrainConfig(
        modalities=modalities,
        train=TrainConfig(
            batch_size=256,
            max_epochs=args.max_epochs,
            patience=2,
            seed=args.seed,
            progress=False,
        ),
        candidate_flair_z=candidate,
        max_lesion_voxels=args.max_lesion_voxels,
        synthetic_copies=args.synthetic_copies,
        lesions_per_copy=30,
        lesion_bank=args.lesion_bank,
        clinical_simulation=0.7,
        contrast_gamma=gamma,
        standardisation=standardisation,
        context=context,
    )


def load_sites(prepared: Path) -> list[Site]:
    """Prepare (once) and load every site's cases."""
    sites = []
    for name, sources in SITES.items():
        cases = []
        for source in sources:
            target = prepared / Path(source).name
            prepare_dataset(DATA / source, target)
            cases += load_prepared(target)
        sites.append(Site(name, tuple(cases)))
    return sites


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
    ap.add_argument("--max-epochs", type=int, default=8)
    ap.add_argument("--max-lesion-voxels", type=int, default=3000)
    ap.add_argument("--synthetic-copies", type=int, default=2)
    args = ap.parse_args()
    modalities = args.modalities.split(",")
    sites = load_sites(args.prepared)
    results = []
    for site in sites:
        cases = site.with_modalities(modalities)
        results += summaries("baseline", site.name, {0.5: score_baseline(cases)})
    for recipe in args.recipes.split(","):
        config = recipe_config(recipe, modalities, args)
        results += leave_one_site_out(
            sites, config, f"{recipe}-{'-'.join(modalities)}", args.work, Thresholds()
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
