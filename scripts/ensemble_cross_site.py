"""Leave-one-site-out scores of an ensemble: the mean probability of one recipe's seeds.

    python scripts/ensemble_cross_site.py --modalities flair,t1 \
        --recipe-dirs runs/xs42/full+smooth-flair-t1 runs/xs43/full+smooth-flair-t1 \
        runs/xs44/full+smooth-flair-t1 \
        --json docs/results/x.json

Each ``--recipe-dirs`` folder is a ``<work>/<recipe>-<modalities>`` folder that a
scripts/cross_site.py run left (``without-<site>`` folds inside). For each held-out site the
members' folds trained without it are averaged, voxel by voxel, and scored as
scripts/cross_site.py scores one model, beside each member alone and the FLAIR-threshold
baseline: how much of the seed spread (issue 9) an ensemble removes, and what it would buy.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from mslesion.devtools.crosssite import (
    SiteScores,
    baseline_scores,
    load_shared_sites,
    markdown_table,
    score_ensemble,
    summaries,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    """Score every member and the ensemble on each held-out site; write JSON and a table."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--recipe-dirs", type=Path, nargs="+", required=True)
    ap.add_argument("--modalities", default="flair,t1")
    ap.add_argument("--prepared", type=Path, default=Path("runs/prepared"))
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args()
    modalities = args.modalities.split(",")
    results: list[SiteScores] = []
    for site in load_shared_sites(DATA, args.prepared):
        cases = site.with_modalities(modalities)
        folds = [d / f"without-{site.name}" for d in args.recipe_dirs]
        results += baseline_scores(site.name, cases)
        for member in folds:
            name = f"{member.parent.parent.name}/{member.parent.name}"
            results += summaries(name, site.name, score_ensemble([member], cases))
        results += summaries(f"ensemble of {len(folds)}", site.name, score_ensemble(folds, cases))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "modalities": modalities,
        "recipe_dirs": [str(d) for d in args.recipe_dirs],
        "results": [r.model_dump(mode="json") for r in results],
    }
    args.json.write_text(json.dumps(payload, indent=2) + "\n")
    print(markdown_table(results))


if __name__ == "__main__":
    main()
