"""`mslesion segment` on every real longitudinal study, wrapped as DICOM: timings and volumes.

    python benchmarks/bench_pipeline.py [--data ../shared/data/open-ms/longitudinal] [--json OUT]
                                        [--itk-threads N]

Each study (FLAIR + T1W + T2W, raw clinical scans with skull) is written as a DICOM study with
the project's NIfTI-to-DICOM tool, then segmented with the shipped model on the CPU. The model
is loaded once, as a worker would. ``--itk-threads 1`` runs every ITK stage on one thread (the
pipeline before 2026-12-07), the baseline for the default, where only registration does.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import SimpleITK as sitk

from mslesion.devtools.dicom_writer import StudyInfo, write_study
from mslesion.services.config import Provider, get_settings
from mslesion.services.pipeline import segment_study
from mslesion.services.segmentation.catalogue import ModelSet


def main() -> None:
    """Segment each study; print a table and optionally write JSON."""
    s = get_settings()
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=s.shared_data_dir / "open-ms/longitudinal")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--itk-threads", type=int, help="ITK's default thread count (default: cores)")
    args = ap.parse_args()
    if args.itk_threads:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.itk_threads)
    model = ModelSet.from_settings(s.model_copy(update={"provider": Provider.CPU}))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for patient in sorted(p for p in args.data.iterdir() if p.is_dir()):
            for study in ("study1", "study2"):
                src = Path(tmp) / f"{patient.name}_{study}"
                write_study(
                    {k: patient / f"{study}_{k}.nii.gz" for k in ("FLAIR", "T1W", "T2W")},
                    src,
                    StudyInfo(patient_id=patient.name),
                )
                t0 = time.perf_counter()
                result = segment_study(src, Path(tmp) / f"out_{patient.name}_{study}", model, s)
                wall = time.perf_counter() - t0
                r = result.report
                rows.append(
                    {
                        "study": f"{patient.name}/{study}",
                        "model": f"{r.model_name} {r.model_version}",
                        "provider": result.provider,
                        "wall_s": round(wall, 2),
                        "lesion_count": r.lesion_count,
                        "total_lesion_volume_ml": round(r.total_lesion_volume_ml, 2),
                        "brain_volume_ml": round(r.brain_volume_ml, 1),
                        "timings_s": result.timings_s,
                    }
                )
                print(
                    f"{patient.name}/{study}: {wall:.1f} s, {r.lesion_count} lesions, "
                    f"{r.total_lesion_volume_ml:.2f} ml, brain {r.brain_volume_ml:.0f} ml"
                )
    result_json = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores",
        "models": sorted({row["model"] for row in rows}),
        "provider": rows[0]["provider"] if rows else "",
        "itk_threads": sitk.ProcessObject.GetGlobalDefaultNumberOfThreads(),
        "studies": rows,
    }
    if args.json:
        args.json.write_text(json.dumps(result_json, indent=2) + "\n")


if __name__ == "__main__":
    main()
