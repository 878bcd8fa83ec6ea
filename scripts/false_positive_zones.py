"""Where a model's false-positive volume lies: McDonald zone, and border or separate lesion.

    python scripts/false_positive_zones.py \
        --model runs/cross_site/full-flair-t1/without-insights-ms \
        --prepared runs/prepared/insights-ms --json docs/results/x.json

Each prepared case is segmented as the pipeline does it (white-matter region, native grid,
t_bin and the size rule of the manifest) and compared with its native lesion mask. False
positive voxels are split into those of predicted lesions that also touch the truth (the
lesion is drawn wider than the annotator drew it) and those of predicted lesions that touch
no truth voxel (a false lesion), per zone of :mod:`mslesion.services.imaging.regions`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from mslesion.devtools.crosssite import segment_case
from mslesion.devtools.prepare import TRANSFORM_NAME, load_prepared, native_truth, to_native
from mslesion.services.config import Provider
from mslesion.services.imaging.regions import REGION_VALUE, regions_on
from mslesion.services.imaging.units import voxel_volume_ml_from_spacing
from mslesion.services.pipeline import binarise_native
from mslesion.services.segmentation.cascade import CascadeModel
from mslesion.services.segmentation.lesions import label_lesions

COLUMNS = ("border_fp_ml", "separate_fp_ml", "true_positive_ml", "false_negative_ml")


def zone_volumes(
    pred: np.ndarray, truth: np.ndarray, zones: np.ndarray, voxel_ml: float
) -> dict[str, dict[str, float]]:
    """Per zone: false-positive, true-positive and false-negative ml.

    False positives are split: on predicted lesions that touch the truth (border), and on
    those that do not (separate).
    """
    labels, _ = label_lesions(pred)
    touching = np.unique(labels[pred & truth])
    separate = pred & ~np.isin(labels, touching[touching > 0])
    out = {}
    for location, value in REGION_VALUE.items():
        zone = zones == value
        counts = (
            (pred & ~truth & ~separate & zone).sum(),
            (separate & zone).sum(),
            (pred & truth & zone).sum(),
            (~pred & truth & zone).sum(),
        )
        out[location.value] = {
            k: round(float(c) * voxel_ml, 3) for k, c in zip(COLUMNS, counts, strict=True)
        }
    return out


def main() -> None:
    """Score every case and print (and optionally write) the zone table."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--prepared", type=Path, required=True)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    model = CascadeModel(args.model, provider=Provider.CPU)
    m = model.manifest
    model_voxel_ml = voxel_volume_ml_from_spacing(m.spacing_mm)
    per_case: dict[str, dict[str, dict[str, float]]] = {}
    for case in load_prepared(args.prepared):
        if not set(m.modalities) <= set(case.modalities):
            continue
        truth, voxel_ml = native_truth(case)
        th = m.thresholds
        prob = to_native(case, segment_case(model, case))
        pred = binarise_native(prob, th.t_bin, th.l_min * model_voxel_ml, voxel_ml, th.l_min) > 0
        transform = sitk.ReadTransform(str(case.folder / TRANSFORM_NAME))
        zones = regions_on(sitk.ReadImage(str(case.native_flair)), transform)
        per_case[case.name] = zone_volumes(pred, truth, zones, voxel_ml)
    totals = {
        zone: {k: round(sum(c[zone][k] for c in per_case.values()), 2) for k in COLUMNS}
        for zone in (loc.value for loc in REGION_VALUE)
    }
    print("| zone | " + " | ".join(COLUMNS) + " |")
    print("|---|" + "---|" * len(COLUMNS))
    for zone, row in totals.items():
        print(f"| {zone} | " + " | ".join(f"{row[k]:.2f}" for k in COLUMNS) + " |")
    if args.json:
        payload = {"model": str(args.model), "cases": per_case, "totals": totals}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
