"""Dense tiled inference vs the patch-wise reference, both nets, one 182×218×182 volume.

Each method runs in its own child process so its peak resident memory (ru_maxrss) is its own.
Dense runs --repeats times (median reported); patch-wise once (it is slow). Usage:

    python benchmarks/bench_dense_vs_patch.py [--subject DIR] [--model DIR] [--json OUT]

Without --subject it uses ../shared/data/open-ms/cross_sectional/patient07.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from mslesion.services.config import DEFAULT_MODEL_NAME, SHIPPED_MODELS_DIR, Provider, get_settings
from mslesion.services.imaging.nifti import load_volume
from mslesion.services.segmentation.cascade import CascadeModel
from mslesion.services.segmentation.dense import dense_predict
from mslesion.services.segmentation.infer import white_matter_prior
from mslesion.services.segmentation.inputs import candidate_mask
from mslesion.services.segmentation.manifest import NetRole
from mslesion.services.segmentation.patchwise import patchwise_volume


def _load(subject: Path, modalities: list[str]) -> dict[str, np.ndarray]:
    names = {"flair": "FLAIR", "t1": "T1", "t2": "T2"}
    return {m: load_volume(subject / f"{names[m]}.nii.gz").data for m in modalities}


def _worker(
    method: str, subject: str, model_dir: str, tile: int, repeats: int, q: mp.Queue
) -> None:
    model = CascadeModel(Path(model_dir), provider=Provider.CPU, tile=tile, hybrid=False)
    prior = white_matter_prior(
        Path(subject) / "FLAIR.nii.gz", required=model.manifest.needs_wm_prior
    )
    stack, brain = model.prepare(_load(Path(subject), model.manifest.modalities), prior)
    th = model.manifest.thresholds
    roi1 = candidate_mask(stack, brain, th.candidate_flair_z)
    times: dict[str, list[float]] = {"net1": [], "net2": []}
    probs = {}
    for _ in range(repeats):
        for net, roi_fn in (("net1", lambda: roi1), ("net2", lambda: probs["net1"] > th.net1)):
            dense_role = NetRole.NET1_DENSE if net == "net1" else NetRole.NET2_DENSE
            patch_role = NetRole.NET1_PATCH if net == "net1" else NetRole.NET2_PATCH
            roi = roi_fn()
            t0 = time.perf_counter()
            if method == "dense":
                p = dense_predict(model.session(dense_role), stack, roi, tile)
            elif method == "hybrid":
                p = dense_predict(
                    model.session(dense_role),
                    stack,
                    roi,
                    tile,
                    patch_session=model.session(patch_role),
                )
            else:
                p = patchwise_volume(model.session(patch_role), stack, roi)
            times[net].append(time.perf_counter() - t0)
            probs[net] = p
            probs[f"{net}_voxels"] = int(roi.sum())
    np.save(f"/tmp/bench_{method}_net1.npy", probs["net1"])
    np.save(f"/tmp/bench_{method}_net2.npy", probs["net2"])
    q.put(
        {
            "times": times,
            "voxels": {k: probs[f"{k}_voxels"] for k in ("net1", "net2")},
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "shape": list(stack.shape[1:]),
        }
    )


def _run(method: str, args: argparse.Namespace, repeats: int) -> dict:
    q: mp.Queue = mp.Queue()
    p = mp.get_context("fork").Process(
        target=_worker, args=(method, str(args.subject), str(args.model), args.tile, repeats, q)
    )
    p.start()
    result = q.get()
    p.join()
    return result


def main() -> None:
    """Run both methods, print a markdown table and optionally write JSON."""
    s = get_settings()
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--subject", type=Path, default=s.shared_data_dir / "open-ms/cross_sectional/patient07"
    )
    ap.add_argument("--model", type=Path, default=SHIPPED_MODELS_DIR / DEFAULT_MODEL_NAME)
    ap.add_argument("--tile", type=int, default=s.tile_size)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    dense = _run("dense", args, args.repeats)
    hybrid = _run("hybrid", args, args.repeats)
    patch = _run("patch", args, 1)

    def max_diff(method: str, net: str) -> float:
        a = np.load(f"/tmp/bench_{method}_{net}.npy")
        return float(np.max(np.abs(a - np.load(f"/tmp/bench_patch_{net}.npy"))))

    rows = {}
    for net in ("net1", "net2"):
        d = statistics.median(dense["times"][net])
        h = statistics.median(hybrid["times"][net])
        p = patch["times"][net][0]
        rows[net] = {
            "voxels_scored": dense["voxels"][net],
            "dense_median_s": round(d, 2),
            "hybrid_median_s": round(h, 2),
            "patch_s": round(p, 2),
            "speedup_dense": round(p / d, 1),
            "speedup_hybrid": round(p / h, 1),
            "max_abs_diff": max(max_diff("dense", net), max_diff("hybrid", net)),
        }
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores",
        "volume": dense["shape"],
        "tile": args.tile,
        "subject": args.subject.name,
        "rows": rows,
        "dense_peak_rss_mb": round(dense["peak_rss_mb"]),
        "hybrid_peak_rss_mb": round(hybrid["peak_rss_mb"]),
        "patch_peak_rss_mb": round(patch["peak_rss_mb"]),
        "total_dense_s": round(sum(r["dense_median_s"] for r in rows.values()), 2),
        "total_hybrid_s": round(sum(r["hybrid_median_s"] for r in rows.values()), 2),
        "total_patch_s": round(sum(r["patch_s"] for r in rows.values()), 2),
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))


def markdown(result: dict) -> str:
    """The result as a markdown table (the form docs/BENCHMARKS.md quotes)."""
    lines = [
        "| net | voxels scored | dense s | dense + sparse tiles patch-wise s | patch-wise s "
        "| speed-up dense | speed-up dense + sparse | max abs Δp |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for net, r in result["rows"].items():
        lines.append(
            f"| {net} | {r['voxels_scored']:,} | {r['dense_median_s']} | {r['hybrid_median_s']} "
            f"| {r['patch_s']} | {r['speedup_dense']}× | {r['speedup_hybrid']}× "
            f"| {r['max_abs_diff']:.1e} |"
        )
    lines.append(
        f"peak RSS: dense {result['dense_peak_rss_mb']} MB, dense + sparse "
        f"{result['hybrid_peak_rss_mb']} MB, patch-wise {result['patch_peak_rss_mb']} MB"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
