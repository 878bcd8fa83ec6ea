"""Leave-one-out evaluation of the cascade on the annotated patients, beside a simple baseline.

For each patient: train on the others (same command line options as the shipped model),
segment the held-out patient, score it at several final thresholds t_bin, and score the
baseline "normalised FLAIR > 1.5, components >= 10 voxels" on the same patient.

    python scripts/leave_one_out.py --data ../shared/data/open-ms/cross_sectional \
        --lesion-bank runs/lesion_bank.npz --out runs/loo --json docs/loo_results.json
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from mslesion.devtools.metrics import evaluate_case, summarise
from mslesion.models.training.cascade_train import CascadeTrainConfig
from mslesion.models.training.dataset import load_dataset
from mslesion.models.training.run import run_training
from mslesion.models.training.trainer import TrainConfig
from mslesion.services.config import Provider
from mslesion.services.imaging.units import voxel_volume_ml_from_affine
from mslesion.services.segmentation.cascade import CascadeModel
from mslesion.services.segmentation.inputs import prepare_stack
from mslesion.services.segmentation.manifest import Thresholds
from mslesion.services.segmentation.postprocess import binarise

log = logging.getLogger("leave_one_out")

T_BINS = (0.5, 0.6, 0.7, 0.8, 0.9)
BASELINE_Z, BASELINE_LMIN = 1.5, 10


def train_config(args: argparse.Namespace) -> CascadeTrainConfig:
    """The training options shared by every fold and by the shipped model."""
    return CascadeTrainConfig(
        modalities=["flair", "t1"],
        train=TrainConfig(
            batch_size=args.batch_size,
            max_epochs=args.max_epochs,
            patience=args.patience,
            seed=args.seed,
            progress=False,
        ),
        max_lesion_voxels=args.max_lesion_voxels,
        synthetic_copies=args.synthetic_copies,
        lesions_per_copy=args.lesions_per_copy,
        lesion_bank=args.lesion_bank,
        clinical_simulation=args.clinical_simulation,
    )


def main() -> None:
    """Run every fold; print and write per-patient and mean metrics."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--lesion-bank", type=Path)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--max-epochs", type=int, default=12)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--max-lesion-voxels", type=int, default=6000)
    ap.add_argument("--synthetic-copies", type=int, default=2)
    ap.add_argument("--lesions-per-copy", type=int, default=30)
    ap.add_argument("--clinical-simulation", type=float, default=0.0)
    args = ap.parse_args()
    subjects = load_dataset(args.data, ["flair", "t1"])
    names = [s.name for s in subjects]
    per_t: dict[float, list] = {t: [] for t in T_BINS}
    baseline = []
    for held in subjects:
        folder = args.out / held.name
        if (folder / "manifest.json").is_file():
            log.info("fold %s already trained: reusing %s", held.name, folder)
        else:
            run_training(
                args.data,
                folder,
                train_config(args),
                Thresholds(),
                name=f"loo-{held.name}",
                version="loo",
                subjects=[n for n in names if n != held.name],
            )
        model = CascadeModel(folder, provider=Provider.CPU)
        out = model.predict(held.images)
        voxel_ml = voxel_volume_ml_from_affine(held.affine)
        for t in T_BINS:
            mask = binarise(out.prob, t, 10)
            per_t[t].append(evaluate_case(mask, held.mask, voxel_ml, held.name))
        stack, brain = prepare_stack({"flair": held.images["flair"]}, ["flair"])
        base = binarise(np.where(brain, stack[0], 0), BASELINE_Z, BASELINE_LMIN)
        baseline.append(evaluate_case(base, held.mask, voxel_ml, held.name))
    result = {
        "cascade": {str(t): summarise(c).model_dump(mode="json") for t, c in per_t.items()},
        "baseline_flair_z1.5_lmin10": summarise(baseline).model_dump(mode="json"),
        "options": {k: str(v) for k, v in vars(args).items()},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    for t, cases in per_t.items():
        m = summarise(cases).mean
        print(
            f"t_bin {t}: Dice {m['dice']:.3f}  lesion F1 {m['lesion_f1']:.3f}  "
            f"TPR {m['lesion_tpr']:.3f}  precision {m['lesion_precision']:.3f}"
        )
    m = summarise(baseline).mean
    print(f"baseline: Dice {m['dice']:.3f}  lesion F1 {m['lesion_f1']:.3f}")


if __name__ == "__main__":
    main()
