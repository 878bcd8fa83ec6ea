"""Follow-up reading against open-ms/longitudinal's reference change masks (issue 10).

    python scripts/followup_eval.py [--work runs/followup] \
        [--out docs/results/followup_longitudinal.json]

Segments both visits of patient01 and patient12 with the shipped models (reused when the
work folder has them), compares them, scores new/enlarging lesions lesion-wise, and writes
the scores with the default rules (volumes and the change detector), and ablations: without
the change detector, without the FLAIR-rise check, without hysteresis, visits reversed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mslesion.devtools.followup_eval import evaluate_patient
from mslesion.services.config import Settings
from mslesion.services.followup.change_detector import load_change_detector
from mslesion.services.followup.model import ChangeThresholds

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "open-ms" / "longitudinal"
MIN_REFERENCE_VOXELS = 20  # ~0.03 ml on the 0.72 x 0.72 x 3 mm common grid


def main() -> None:
    """Run the evaluation and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--work", type=Path, default=Path("runs/followup"))
    parser.add_argument("--out", type=Path, default=Path("docs/results/followup_longitudinal.json"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    settings = Settings()
    detector = load_change_detector(settings)
    variants = {
        "default": ChangeThresholds(),
        "no_intensity_check": ChangeThresholds(new_min_intensity_rise=-1e9),
        "no_hysteresis_no_intensity_check": ChangeThresholds(
            new_min_intensity_rise=-1e9, new_max_prior_probability=1.01
        ),
    }
    results: dict[str, list[dict[str, object]]] = {}
    runs = [(name, t, False, detector) for name, t in variants.items()]
    runs.append(("without_change_detector", ChangeThresholds(), False, None))
    for p in (0.5, 0.7):
        runs.append(
            (f"change_probability_{p}", ChangeThresholds(change_probability=p), False, detector)
        )
    runs.append(("default_reversed_visits", ChangeThresholds(), True, detector))
    for name, thresholds, reverse, reader in runs:
        rows = []
        for patient in ("patient01", "patient12"):
            score, _ = evaluate_patient(
                args.data / patient,
                args.work,
                settings,
                thresholds,
                MIN_REFERENCE_VOXELS,
                reverse=reverse,
                detector=reader,
            )
            rows.append(score.model_dump())
            print(name, json.dumps(score.model_dump()))
        results[name] = rows
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "min_reference_voxels": MIN_REFERENCE_VOXELS,
        "change_detector": detector.name if detector else None,
        "variants": results,
    }
    args.out.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
