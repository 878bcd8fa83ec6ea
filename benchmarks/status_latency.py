"""Job-status latency with 50 concurrent clients, against GET /health/live in the same run.

    python benchmarks/status_latency.py [--clients 50] [--requests 40] [--rounds 3] [--json OUT]

The gateway (uvicorn, one process) runs in a child process on a fresh local PostgreSQL
database holding one succeeded job with result rows and a forward. --clients asyncio tasks,
each with its own httpx connection, send --requests requests one after another:

* status: ``GET /api/v1/jobs/{id}`` — key lookup, job detail query, and the audit event
  committed before the answer (a read of patient data is audited);
* baseline: ``GET /health/live`` of the same server — routing and HTTP only.

Reported: median and p99 latency (ms) and requests/s, median over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from benchmarks.pg import create_database, drop_database
from benchmarks.stow_throughput import API_KEY, serve_gateway, start_server
from mslesion.services.store.database import Database
from mslesion.services.store.enums import Source
from mslesion.services.store.repositories import forwards, jobs, studies
from mslesion.services.store.repositories.jobs import JobOutcome, ResultRecord
from mslesion.services.store.repositories.studies import InstanceRecord


def seed_job(db_url: str) -> str:
    """One succeeded job with results and a forward, as the status endpoint would see it."""
    db = Database(db_url)
    with db.session() as session:
        uid = "1.2.826.0.1.3680043.8.498.1"
        studies.record_instance(
            session,
            InstanceRecord(
                study_uid=uid,
                series_uid=f"{uid}.1",
                sop_instance_uid=f"{uid}.1.1",
                sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
                patient_id="BENCH",
                path="x.dcm",
                size_bytes=1,
            ),
            Source.DIMSE,
            "PACS",
        )
        study = studies.get_study(session, uid)
        assert study is not None
        job_id = jobs.create_job(session, study.id, "PACS").id
        jobs.claim(session, job_id, "worker-1")
        jobs.succeed(
            session,
            job_id,
            JobOutcome(
                timings_s={"read": 1.0, "preprocess": 8.0, "cascade": 12.0, "outputs": 1.0},
                series=[
                    {"role": r, "series_instance_uid": f"{uid}.{i}"}
                    for i, r in enumerate(("flair", "t1", "t2"), 2)
                ],
                provider="CPUExecutionProvider",
                model="ms-cascade-flair-t1 1.1.0",
                lesion_count=12,
                lesion_volume_ml=8.4,
                brain_volume_ml=1180.0,
                results=[
                    ResultRecord(kind=k, path=f"{job_id}/{k}", media_type="application/dicom")
                    for k in ("seg", "sr", "json", "png")
                ],
            ),
        )
        forwards.ensure_forwards(session, job_id, ["dicom://PACS@pacs:104"])
    db.dispose()
    return job_id


async def _client(url: str, count: int, latencies: list[float]) -> None:
    async with httpx.AsyncClient(headers={"X-API-Key": API_KEY}, timeout=60) as client:
        for _ in range(count):
            start = time.perf_counter()
            response = await client.get(url)
            latencies.append(time.perf_counter() - start)
            if response.status_code != 200:
                raise RuntimeError(f"{url}: {response.status_code} {response.text[:200]}")


async def load(url: str, clients: int, requests: int) -> dict[str, float]:
    """Latency percentiles (ms) and throughput of ``clients`` concurrent request loops."""
    latencies: list[float] = []
    start = time.perf_counter()
    await asyncio.gather(*(_client(url, requests, latencies) for _ in range(clients)))
    elapsed = time.perf_counter() - start
    ordered = sorted(latencies)
    return {
        "median_ms": round(1000 * statistics.median(ordered), 2),
        "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2),
        "requests_per_s": round(len(ordered) / elapsed, 1),
    }


def main() -> None:
    """Run the benchmark and print (and optionally write) the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=40, help="per client and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path("docs/results/status_latency.json"))
    args = parser.parse_args()

    db_url = create_database()
    job_id = seed_job(db_url)
    rounds: list[dict[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="mslesion-bench-") as tmp:
        server, base = start_server(serve_gateway, db_url, str(Path(tmp) / "node"))
        try:
            asyncio.run(load(f"{base}/api/v1/jobs/{job_id}", 10, 5))  # warm the pools
            for index in range(args.rounds):
                live = asyncio.run(load(f"{base}/health/live", args.clients, args.requests))
                status = asyncio.run(
                    load(f"{base}/api/v1/jobs/{job_id}", args.clients, args.requests)
                )
                rounds.append({"status": status, "live": live})
                print(f"round {index}: {rounds[-1]}")
        finally:
            server.kill()
            drop_database(db_url)

    def med(which: str, key: str) -> float:
        return round(statistics.median(r[which][key] for r in rounds), 2)

    result = {
        "benchmark": f"GET /api/v1/jobs/{{id}} with {args.clients} concurrent clients",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "requests_per_round": args.clients * args.requests,
        "rounds": rounds,
        "status": {k: med("status", k) for k in ("median_ms", "p99_ms", "requests_per_s")},
        "baseline": "GET /health/live on the same server in the same run",
        "live": {k: med("live", k) for k in ("median_ms", "p99_ms", "requests_per_s")},
    }
    result["ratio_status_to_live_requests_per_s"] = round(
        result["status"]["requests_per_s"] / result["live"]["requests_per_s"], 3
    )
    print(json.dumps(result, indent=2))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
