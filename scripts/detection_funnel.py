"""Where a model loses true lesions: region, candidate rule, net 1, net 2, size rule.

    python scripts/detection_funnel.py \
        --model runs/xs/full+smooth/without-open-ms \
        --prepared runs/prepared/cross_sectional --json docs/results/x.json

Each prepared case is segmented as the pipeline does it (white-matter region, candidate rule,
net 1, net 2, back to the native FLAIR grid, t_bin and the size rule of the manifest). Every
truth lesion the node could report (at least the reporting floor in acquired voxels) is
followed through the stages on the native grid, each stage mapped there by the same
interpolation as the probability: the first stage at which none of its voxels survives is
where it is lost. Reported false lesions (touching no truth voxel) are counted by the net-2
probability they carry, to show what a threshold could and could not separate.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np

from mslesion.devtools.crosssite import case_wm_prior, load_case_images
from mslesion.devtools.prepare import PreparedCase, load_prepared, native_truth, to_native
from mslesion.services.config import Provider
from mslesion.services.imaging.units import voxel_volume_ml_from_spacing
from mslesion.services.pipeline import binarise_native, reporting_floor
from mslesion.services.segmentation.cascade import CascadeModel
from mslesion.services.segmentation.lesions import label_lesions
from mslesion.services.segmentation.prior import (
    WM_PRIOR_DILATE_MM,
    WM_PRIOR_THRESHOLD,
    white_matter_roi,
)

STAGES = ("region", "candidate", "net1", "net2", "size_rule", "reported")
SIZE_BINS_ML = (0.0, 0.03, 0.1, 0.3, 1e9)


def _stage_maps(model: CascadeModel, case: PreparedCase) -> dict[str, np.ndarray]:
    """Each stage's surviving voxels (or probability) on the native FLAIR grid."""
    prior = case_wm_prior(case)
    roi = white_matter_roi(prior, WM_PRIOR_THRESHOLD, WM_PRIOR_DILATE_MM)
    images = load_case_images(case, model.manifest.modalities)
    out = model.predict(images, restrict=roi, wm_prior=prior)
    th = model.manifest.thresholds
    return {
        "region": to_native(case, (roi & out.brain).astype(np.float32)) >= 0.5,
        "candidate": to_native(case, out.candidates.astype(np.float32)) >= 0.5,
        "net1": to_native(case, out.prob1 * out.candidates) > th.net1,
        "prob": to_native(case, out.prob),
    }


def funnel_case(model: CascadeModel, case: PreparedCase) -> dict[str, Any]:
    """Per reportable truth lesion: the stage where it is lost; false lesions by probability."""
    m = model.manifest
    truth, voxel_ml = native_truth(case)
    maps = _stage_maps(model, case)
    l_min_ml = m.thresholds.l_min * voxel_volume_ml_from_spacing(m.spacing_mm)
    floor = reporting_floor(l_min_ml, voxel_ml, m.thresholds.l_min)
    net2 = maps["prob"] >= m.thresholds.t_bin
    reported = (
        binarise_native(maps["prob"], m.thresholds.t_bin, l_min_ml, voxel_ml, m.thresholds.l_min)
        > 0
    )
    survive = {
        "region": maps["region"],
        "candidate": maps["candidate"],
        "net1": maps["net1"],
        "net2": net2,
        "size_rule": reported,
    }
    labels, n = label_lesions(truth)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    lesions = []
    for k in range(1, n + 1):
        if sizes[k] < floor:
            continue
        voxels = labels == k
        lost = next((s for s, mask in survive.items() if not mask[voxels].any()), "reported")
        lesions.append(
            {
                "volume_ml": round(float(sizes[k]) * voxel_ml, 4),
                "lost_at": lost,
                "max_prob": round(float(maps["prob"][voxels].max()), 3),
            }
        )
    pred_labels, n_pred = label_lesions(reported)
    touching = set(np.unique(pred_labels[reported & truth]).tolist()) - {0}
    false = [
        round(float(maps["prob"][pred_labels == j].max()), 3)
        for j in range(1, n_pred + 1)
        if j not in touching
    ]
    return {
        "case": case.name,
        "reporting_floor_voxels": floor,
        "lesions": lesions,
        "false_lesion_max_prob": sorted(false),
        "true_reported_lesions": len(touching),
    }


def summary_table(cases: list[dict[str, Any]]) -> str:
    """Markdown: truth lesions per size bin and the stage where they are lost."""
    head = " | ".join(f"lost at {s}" for s in STAGES[:-1])
    rows = [
        f"| truth lesion size | lesions | {head} | reported |",
        "|---" * (len(STAGES) + 2) + "|",
    ]
    lesions = [les for c in cases for les in c["lesions"]]
    for lo, hi in itertools.pairwise(SIZE_BINS_ML):
        inside = [les for les in lesions if lo <= les["volume_ml"] < hi]
        counts = [sum(1 for les in inside if les["lost_at"] == s) for s in STAGES]
        label = f"≥ {lo} ml" if hi > 1e8 else f"{lo}–{hi} ml"
        rows.append(f"| {label} | {len(inside)} | " + " | ".join(str(c) for c in counts) + " |")
    return "\n".join(rows) + "\n"


def _case_line(result: dict[str, Any]) -> str:
    false = result["false_lesion_max_prob"]
    quartiles = np.percentile(false, [25, 50, 75]).round(2).tolist() if false else "-"
    return (
        f"{result['case']}: {result['true_reported_lesions']} reported lesions touch the truth, "
        f"{len(false)} false (their max probability, quartiles: {quartiles})"
    )


def main() -> None:
    """Run the funnel on every prepared case of one folder."""
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
    print(summary_table(results))
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "cases": results}, indent=1))


if __name__ == "__main__":
    main()
