"""Where a model loses true lesions: region, candidate rule, net 1, net 2, size rule.

    python scripts/detection_funnel.py \
        --model runs/xs/full+smooth-flair-t1/without-open-ms \
        --prepared runs/prepared/cross_sectional --json docs/results/x.json

Each prepared case is segmented as the pipeline does it (white-matter region, candidate rule,
net 1, net 2, back to the native FLAIR grid, t_bin and the size rule of the manifest); every
truth lesion the node could report is followed through the stages
(:mod:`mslesion.devtools.funnel`). Prints each case and the table per lesion size.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mslesion.devtools.funnel import CaseFunnel, funnel_case, funnel_table
from mslesion.devtools.prepare import load_prepared
from mslesion.services.config import Provider
from mslesion.services.segmentation.cascade import CascadeModel


def _case_line(result: CaseFunnel) -> str:
    false = result.false_lesion_max_prob
    quartiles = np.percentile(false, [25, 50, 75]).round(2).tolist() if false else "-"
    return (
        f"{result.case}: {result.true_reported_lesions} reported lesions touch the truth, "
        f"{len(false)} false (their peak probability, quartiles: {quartiles})"
    )


def main() -> None:
    """Run the funnel on every prepared case of one folder that has the model's series."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--prepared", type=Path, required=True)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    model = CascadeModel(args.model, provider=Provider.CPU)
    wanted = set(model.manifest.modalities)
    cases = [c for c in load_prepared(args.prepared) if wanted <= set(c.modalities)]
    results = [funnel_case(model, c) for c in cases]
    for r in results:
        print(_case_line(r))
    print(funnel_table(results))
    if args.json:
        out = {"model": str(args.model), "cases": [r.model_dump(mode="json") for r in results]}
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
