"""STOW-RS throughput of the gateway vs a baseline that only receives the same bytes.

    python benchmarks/stow_throughput.py [--rounds 3] [--batch 20] [--json OUT]

Each round writes a fresh phantom study (FLAIR, T1W, T2W: 480 MR instances of about 60 kB,
new UIDs every round, so nothing is a duplicate) and POSTs it in batches of --batch instances
as ``multipart/related; type="application/dicom"`` with httpx, one request at a time:

* gateway: ``POST /dicom-web/studies`` of the real app (uvicorn, one process) on a fresh
  local PostgreSQL database: every instance parsed, fsynced into the spool and recorded
  before the answer; the study is completed (one job) at the end of each request.
* baseline: the same bodies to a bare ASGI endpoint in its own uvicorn process that reads
  the body and discards it: the ceiling set by HTTP transport on this machine.

Servers run in child processes so the client does not share their interpreter. Reported:
median instances/s and MB/s over the rounds and the gateway/baseline ratio.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from benchmarks.pg import create_database, drop_database
from mslesion.devtools.dicom_writer import StudyInfo, write_study
from mslesion.devtools.phantom import make_phantom, write_phantom
from mslesion.services.config import Settings
from mslesion.services.store.database import Database
from mslesion.services.store.enums import Role
from mslesion.services.store.repositories import keys

BOUNDARY = "mslesion-bench"
PHANTOM_SHAPE = (160, 192, 160)
API_KEY = "msl_benchmark_key_not_secret"


class NullDispatcher:
    """Jobs are created in the database but nothing runs them during the benchmark."""

    def enqueue_job(self, job_id: str) -> None:
        """Accept and forget."""

    def enqueue_forward(self, job_id: str) -> None:
        """Accept and forget."""

    def enqueue_comparison(self, comparison_id: str) -> None:
        """Accept and forget."""

    def enqueue_comparison_forward(self, comparison_id: str) -> None:
        """Accept and forget."""

    def ping(self) -> None:
        """Always reachable."""


def serve_gateway(db_url: str, data_dir: str, port: int) -> None:
    from mslesion.api.main import create_app

    settings = Settings(data_dir=Path(data_dir), database_url=db_url, rate_limit_per_minute=0)
    db = Database(db_url)
    with db.session() as session:
        keys.ensure_key(session, "bench", Role.ADMIN, API_KEY)
    app = create_app(settings, db, NullDispatcher())
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


async def _discard(scope: dict[str, Any], receive: Callable[..., Any], send: Any) -> None:
    """A bare ASGI endpoint: read the body, throw it away, answer 200."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def serve_discard(port: int) -> None:
    uvicorn.run(_discard, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def start_server(target: Callable[..., None], *args: Any) -> tuple[mp.Process, str]:
    """Run ``target(*args, port)`` in a child process; wait until it answers."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = mp.get_context("spawn").Process(target=target, args=(*args, port), daemon=True)
    proc.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/health/live", timeout=1)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{target.__name__} did not start")


def study_files(workdir: Path, nifti: dict[str, Path], index: int) -> list[bytes]:
    """A new DICOM study (new UIDs) of the phantom; the instances' bytes."""
    out = workdir / f"study{index}"
    written = write_study(
        {"FLAIR": nifti["FLAIR"], "T1W": nifti["T1"], "T2W": nifti["T2"]},
        out,
        StudyInfo(patient_id=f"BENCH{index}", study_date="20240101"),
    )
    return [p.read_bytes() for paths in written.values() for p in paths]


def bodies(instances: list[bytes], batch: int) -> list[bytes]:
    """multipart/related bodies of ``batch`` instances each."""
    out = []
    for start in range(0, len(instances), batch):
        body = bytearray()
        for data in instances[start : start + batch]:
            body += f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
            body += data + b"\r\n"
        body += f"--{BOUNDARY}--\r\n".encode()
        out.append(bytes(body))
    return out


def post_all(url: str, payloads: list[bytes]) -> float:
    """Seconds to POST every body in order over one connection; each must answer 200."""
    headers = {
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={BOUNDARY}',
        "X-API-Key": API_KEY,
    }
    with httpx.Client(timeout=300) as client:
        start = time.perf_counter()
        for body in payloads:
            response = client.post(url, content=body, headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"{url}: {response.status_code} {response.text[:300]}")
        return time.perf_counter() - start


def main() -> None:
    """Run the benchmark and print (and optionally write) the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--json", type=Path, default=Path("docs/results/stow_throughput.json"))
    args = parser.parse_args()

    db_url = create_database()
    with tempfile.TemporaryDirectory(prefix="mslesion-bench-") as tmp:
        workdir = Path(tmp)
        nifti = write_phantom(make_phantom(shape=PHANTOM_SHAPE, seed=1), workdir / "nifti")
        gateway, gateway_url = start_server(serve_gateway, db_url, str(workdir / "node"))
        discard, discard_url = start_server(serve_discard)
        rows: list[dict[str, float]] = []
        try:
            for index in range(args.rounds):
                instances = study_files(workdir, nifti, index)
                payloads = bodies(instances, args.batch)
                megabytes = sum(len(i) for i in instances) / 1e6
                t_base = post_all(f"{discard_url}/dicom-web/studies", payloads)
                t_gate = post_all(f"{gateway_url}/dicom-web/studies", payloads)
                rows.append(
                    {
                        "instances": len(instances),
                        "megabytes": round(megabytes, 2),
                        "gateway_s": round(t_gate, 3),
                        "baseline_s": round(t_base, 3),
                    }
                )
                print(f"round {index}: {rows[-1]}")
        finally:
            gateway.kill()
            discard.kill()
            drop_database(db_url)

    def median(key: str, per: str) -> float:
        return statistics.median(r[per] / r[key] for r in rows)

    result = {
        "benchmark": "STOW-RS throughput (POST /dicom-web/studies, sequential requests)",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "batch_instances": args.batch,
        "rounds": rows,
        "gateway_instances_per_s": round(median("gateway_s", "instances"), 1),
        "gateway_mb_per_s": round(median("gateway_s", "megabytes"), 2),
        "baseline": "same bodies to a bare ASGI endpoint that discards them (uvicorn)",
        "baseline_instances_per_s": round(median("baseline_s", "instances"), 1),
        "baseline_mb_per_s": round(median("baseline_s", "megabytes"), 2),
    }
    result["ratio_gateway_to_baseline"] = round(
        result["gateway_instances_per_s"] / result["baseline_instances_per_s"], 3
    )
    print(json.dumps(result, indent=2))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
