"""Preprocessing of raw clinical studies: per-stage timings and brain-extraction Dice.

Runs :func:`services.imaging.preprocess.preprocess` on the four open-ms longitudinal studies
(FLAIR + T1W + T2W, skull on, native 2D geometry) and scores the brain mask, mapped back onto
the native FLAIR grid, against the expert mask (``brainmask_common_space.nii.gz`` pulled onto
each FLAIR through the inverse of ``study*_FLAIR_to_common_space.txt``, which maps common-space
points to FLAIR points). The first study also pays the one-off template loading, reported
separately as ``template_load_s``. Usage:

    python benchmarks/bench_preprocess.py [--data DIR] [--json OUT]

``--data`` defaults to ``../shared/data/open-ms/longitudinal``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from mslesion.services.config import get_settings
from mslesion.services.imaging import registration, template
from mslesion.services.imaging.preprocess import preprocess, read_nifti_as_sitk
from mslesion.services.imaging.units import voxel_volume_ml_from_spacing

STUDIES = [(p, s) for p in ("patient01", "patient12") for s in ("study1", "study2")]


def reference_brain(folder: Path, study: str, flair: sitk.Image) -> np.ndarray:
    """Expert brain mask on the native FLAIR grid as a bool (z, y, x) array."""
    common_to_flair = sitk.ReadTransform(str(folder / f"{study}_FLAIR_to_common_space.txt"))
    mask = sitk.ReadImage(str(folder / "brainmask_common_space.nii.gz"))
    on_flair = sitk.Resample(mask, flair, common_to_flair.GetInverse(), sitk.sitkNearestNeighbor)
    return sitk.GetArrayFromImage(on_flair) > 0


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient of two boolean arrays."""
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


@dataclass
class StudyResult:
    """Outcome of one study (JSON-ready through :func:`dataclasses.asdict`)."""

    study: str
    wall_s: float
    timings_s: dict[str, float]
    dominant_stage: str
    brain_dice: float
    brain_ml: float
    reference_brain_ml: float
    coverage: dict[str, float]
    template_scales: list[float]  # singular values of the template-to-FLAIR affine


def run_study(folder: Path, study: str) -> StudyResult:
    """Preprocess one study and score its brain mask against the expert one."""
    names = ("FLAIR", "T1W", "T2W")
    series = {m: read_nifti_as_sitk(folder / f"{study}_{m}.nii.gz") for m in names}
    start = time.perf_counter()
    result = preprocess(series["FLAIR"], series["T1W"], series["T2W"])
    wall = time.perf_counter() - start
    flair = series["FLAIR"]
    ours = sitk.GetArrayFromImage(result.brain_native()) > 0
    reference = reference_brain(folder, study, flair)
    voxel_ml = voxel_volume_ml_from_spacing(flair.GetSpacing())
    matrix = registration.affine_matrix(result.transforms.template_to_flair)[:3, :3]
    return StudyResult(
        study=f"{folder.name}/{study}",
        wall_s=round(wall, 3),
        timings_s={k: round(v, 3) for k, v in result.timings_s.items()},
        dominant_stage=max(result.timings_s, key=lambda k: result.timings_s[k]),
        brain_dice=round(dice(ours, reference), 4),
        brain_ml=round(float(ours.sum()) * voxel_ml, 1),
        reference_brain_ml=round(float(reference.sum()) * voxel_ml, 1),
        coverage={k: round(v, 3) for k, v in result.coverage.items()},
        template_scales=[round(float(x), 3) for x in np.linalg.svd(matrix, compute_uv=False)],
    )


def print_table(results: list[StudyResult], template_load: float) -> dict[str, float]:
    """Print per-study Dice and stage timings; return the mean time of each stage."""
    stages = list(results[0].timings_s)
    print(f"template load: {template_load:.2f} s (once per process)")
    print(f"{'study':<20}{'dice':>7}{'wall s':>8}  " + "".join(f"{s[:12]:>13}" for s in stages))
    for row in results:
        cells = "".join(f"{row.timings_s.get(s, 0.0):>13.2f}" for s in stages)
        print(f"{row.study:<20}{row.brain_dice:>7.4f}{row.wall_s:>8.2f}  {cells}")
    mean = {s: float(np.mean([r.timings_s.get(s, 0.0) for r in results])) for s in stages}
    dominant = max(mean, key=lambda k: mean[k])
    wall = float(np.mean([r.wall_s for r in results]))
    print(f"mean wall {wall:.2f} s; dominant stage: {dominant} ({mean[dominant]:.2f} s)")
    return mean


def main() -> None:
    """Parse arguments, run every study, print a table, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = get_settings().shared_data_dir / "open-ms" / "longitudinal"
    parser.add_argument("--data", type=Path, default=default)
    parser.add_argument("--json", type=Path, default=None, help="write results here")
    args = parser.parse_args()

    start = time.perf_counter()
    template.template_t1()
    template.template_brain_mask()
    template_load = time.perf_counter() - start
    results = [run_study(args.data / patient, study) for patient, study in STUDIES]
    mean = print_table(results, template_load)

    if args.json:
        payload = {
            "benchmark": "preprocess",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
            # Other jobs on the machine inflate timings: the load average says how busy it was.
            "load_average_at_end": list(os.getloadavg()),
            "template_load_s": round(template_load, 3),
            "mean_stage_s": {k: round(v, 3) for k, v in mean.items()},
            "mean_wall_s": round(float(np.mean([r.wall_s for r in results])), 3),
            "studies": [asdict(r) for r in results],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
