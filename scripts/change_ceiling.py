"""How many FLAIR-rise candidates a follow-up reader must flag for each sensitivity (issue 10).

    python scripts/change_ceiling.py [--work runs/followup] \
        [--out docs/results/change_ceiling_longitudinal.json]

For patient01 and patient12 of open-ms/longitudinal: candidates of significant FLAIR rise,
ranked by their cluster mass (mslesion/devtools/change_ceiling.py), over the whole brain and
only where either visit's lesion probability reaches 0.1 (LST-longitudinal style: change read
inside the fused lesion maps). The second needs both visits analysed by the pipeline in
``--work`` (scripts/followup_eval.py leaves them there); without them only the first is run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from mslesion.devtools.change_ceiling import Pair, rank_pair
from mslesion.devtools.followup_eval import (
    Visit,
    common_space_flairs,
    common_space_maps,
    visits,
)
from mslesion.services.followup.artefacts import read_analysis

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "open-ms" / "longitudinal"
DATES = ("20100101", "20110101")  # the dates scripts/followup_eval.py gives the two visits
Z = (2.5, 3.0)
MAP_FLOOR = 0.1


def main() -> None:
    """Rank each pair's candidates and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--work", type=Path, default=Path("runs/followup"))
    parser.add_argument(
        "--out", type=Path, default=Path("docs/results/change_ceiling_longitudinal.json")
    )
    args = parser.parse_args()
    rows = []
    for patient in ("patient01", "patient12"):
        folder = args.data / patient
        pair_visits = visits(folder)
        reference = sitk.ReadImage(str(folder / "lesion_change_mask_common_space.nii.gz"))
        brain = sitk.ReadImage(str(folder / "brainmask_common_space.nii.gz"))
        prior, current = common_space_flairs(pair_visits, reference, brain)
        pair = Pair(
            prior=prior.astype(np.float64),
            current=current.astype(np.float64),
            brain=sitk.GetArrayFromImage(brain) > 0,
            reference=sitk.GetArrayFromImage(reference) > 0,
        )
        region = _lesion_maps(args.work, patient, pair_visits, reference)
        for z in Z:
            rows.append(rank_pair(pair, patient, z))
            if region is not None:
                rows.append(rank_pair(pair, patient, z, region, f"lesion maps >= {MAP_FLOOR}"))
    for row in rows:
        print(json.dumps(row.model_dump()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"map_floor": MAP_FLOOR, "rankings": [r.model_dump() for r in rows]}
    args.out.write_text(json.dumps(payload, indent=2) + "\n")


def _lesion_maps(
    work: Path, patient: str, pair_visits: tuple[Visit, Visit], reference: sitk.Image
) -> np.ndarray | None:
    """Where either visit's own lesion probability reaches MAP_FLOOR, or None if not analysed."""
    dirs = [work / f"{patient}-{date}.out" for date in DATES]
    if not all((d / "analysis").is_dir() for d in dirs):
        return None
    analyses = [read_analysis(d) for d in dirs]
    maps = tuple(a.image_like(a.probability) for a in analyses)
    prior, current = common_space_maps(pair_visits, (maps[0], maps[1]), reference)
    return np.maximum(prior, current) >= MAP_FLOOR


if __name__ == "__main__":
    main()
