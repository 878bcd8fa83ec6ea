"""What the follow-up reading adds to a study, beside the single-study analysis it builds on.

    python benchmarks/bench_followup.py [--data ../shared/data/open-ms/longitudinal] [--repeat 3]

For each longitudinal patient both visits are wrapped as DICOM studies and analysed
(``segment_study``: the baseline, timed per study), then the later visit is compared with the
earlier one (``compare_results``: registration, resampling, the change detector, matching and
the SEG, SR, secondary capture, JSON and PNG), ``--repeat`` times, alternating with the same
comparison without the change detector (``MSLESION_FOLLOWUP_CHANGE_DETECTOR=none``). Medians
are printed side by side with their ratios; the model is loaded once, as a worker does.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from mslesion.devtools.dicom_writer import StudyInfo, write_study
from mslesion.services.config import Provider, get_settings
from mslesion.services.followup.service import compare_results
from mslesion.services.followup.sources import flair_sources
from mslesion.services.pipeline import segment_study
from mslesion.services.segmentation.catalogue import ModelSet


def main() -> None:
    """Time single-study analyses and follow-up comparisons; print a table."""
    settings = get_settings()
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=settings.shared_data_dir / "open-ms/longitudinal")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    models = ModelSet.from_settings(settings.model_copy(update={"provider": Provider.CPU}))
    single: list[float] = []
    followup: list[float] = []
    volumes_only: list[float] = []
    plain = settings.model_copy(update={"followup_change_detector": None})
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, CPU provider")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for patient in sorted(p for p in args.data.iterdir() if p.is_dir()):
            studies, results = {}, {}
            for n, visit in enumerate(("study1", "study2"), start=1):
                studies[visit] = root / f"{patient.name}_{visit}"
                write_study(
                    {k: patient / f"{visit}_{k}.nii.gz" for k in ("FLAIR", "T1W", "T2W")},
                    studies[visit],
                    StudyInfo(patient_id=patient.name, study_date=f"2010010{n}"),
                )
                t0 = time.perf_counter()
                results[visit] = segment_study(
                    studies[visit], root / f"out_{patient.name}_{visit}", models, settings
                )
                single.append(time.perf_counter() - t0)
                print(f"{patient.name} {visit}: single-study {single[-1]:.1f} s")
            for attempt in range(args.repeat):
                for label, config, times in (
                    ("follow-up", settings, followup),
                    ("without detector", plain, volumes_only),
                ):
                    out = root / f"followup_{patient.name}_{attempt}"
                    t0 = time.perf_counter()
                    compare_results(
                        root / f"out_{patient.name}_study1",
                        root / f"out_{patient.name}_study2",
                        out,
                        config,
                        current_sources=flair_sources(studies["study2"], results["study2"].report),
                        prior_sources=flair_sources(studies["study1"], results["study1"].report),
                    )
                    times.append(time.perf_counter() - t0)
                    print(f"{patient.name} {label} #{attempt + 1}: {times[-1]:.1f} s")
                    shutil.rmtree(out)
    s, f = statistics.median(single), statistics.median(followup)
    v = statistics.median(volumes_only)
    print(
        f"median single-study {s:.1f} s (n={len(single)}), follow-up {f:.1f} s "
        f"(n={len(followup)}), without the change detector {v:.1f} s; ratios follow-up/single "
        f"{f / s:.2f}, with/without detector {f / v:.2f}"
    )


if __name__ == "__main__":
    main()
