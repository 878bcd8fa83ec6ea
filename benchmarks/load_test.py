"""Load on the real stack: 8 C-STORE associations and 20 STOW-RS clients at once, for minutes.

    python benchmarks/load_test.py [--duration 300] [--scus 8] [--stow-clients 20]
                                   [--study-size 20] [--batch 10] [--json OUT]

Started by the script, torn down at the end:

* a throwaway PostgreSQL database (created and migrated here, dropped afterwards);
* ``mslesion gateway`` and ``mslesion listener`` as subprocesses, jobs handed to Redis
  (``MSLESION_BROKER_URL``, a private Redis database index, flushed before and after); no
  worker runs, so the jobs the completed studies get simply queue: the load is on ingest.

Load, from two client processes (so the clients do not share one interpreter's lock):

* ``--scus`` threads of pynetdicom SCUs; each opens an association per study, sends
  ``--study-size`` small MR instances (64x64, 16-bit; fresh UIDs every time) one C-STORE
  after another, releases, and starts the next study;
* ``--stow-clients`` concurrent httpx clients (asyncio), each with its own uploader API key
  (the gateway's rate limit, MSLESION_RATE_LIMIT_PER_MINUTE, is per key and left at its
  default); each POSTs one study of ``--batch`` instances per STOW-RS request, fresh UIDs
  every time.

Recorded: per-instance C-STORE latency, per-request STOW latency, every non-success (a
C-STORE status other than 0x0000, an aborted or refused association, a STOW answer other
than 200, a transport error), throughput in instances/s, and the resident memory (VmRSS from
/proc, process and children) of the gateway and the listener every 5 s, compared between
the first and the last minute. At the end every acknowledged instance must be in the spool
(a file count: nothing acknowledged is lost). The summary is printed and written to
``docs/results/load_<date>.json`` (or --json).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import json
import multiprocessing as mp
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, MRImageStorage

from benchmarks.pg import create_database, drop_database
from mslesion.services.store.enums import Role

REDIS_URL = os.environ.get("MSLESION_TEST_REDIS", "redis://localhost:6379")
REDIS_DB = 15  # the tests' private indexes are 1..14
REPO = Path(__file__).resolve().parents[1]
ROOT = "1.2.826.0.1.3680043.10.1044.77"  # UID root of generated instances
BOUNDARY = "mslesion-load"
API_KEY = "msl_load_test_key_not_secret"
SAMPLE_EVERY_S = 5.0


# --- instances ------------------------------------------------------------------------------


def mr_instance(study: str, series: str, sop: str, number: int, patient: str) -> Dataset:
    """A small valid MR Image Storage instance (64x64, 16-bit) with these UIDs."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(MRImageStorage)
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = UID(MRImageStorage), UID(sop)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = UID(study), UID(series)
    ds.StudyDate, ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "20240131", "MR", 1, number
    ds.PatientName, ds.PatientID = "Load^Test", patient
    ds.ImagePositionPatient = [0.0, 0.0, float(number)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing, ds.SliceThickness = [1.0, 1.0], 1.0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows = ds.Columns = 64
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = ((np.arange(64 * 64, dtype=np.uint16) * 7 + number) % 4096).tobytes()
    return ds


def part10(ds: Dataset) -> bytes:
    """``ds`` as a Part 10 file."""
    out = io.BytesIO()
    pydicom.dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()


class Uids:
    """Fresh UIDs for one client: ``ROOT.run.client.counter``."""

    def __init__(self, run: int, client: int) -> None:
        self._prefix = f"{ROOT}.{run}.{client}"
        self._counter = itertools.count(1)

    def new(self) -> str:
        """A UID not used before in this run."""
        return f"{self._prefix}.{next(self._counter)}"

    def study(self, size: int, patient: str) -> list[Dataset]:
        """The instances of one new single-series study."""
        study, series = self.new(), self.new()
        return [mr_instance(study, series, self.new(), i + 1, patient) for i in range(size)]


# --- results of one client process ------------------------------------------------------------


@dataclass
class Record:
    """What one load client process saw."""

    kind: str
    latencies_s: list[float] = field(default_factory=list)  # per instance / per request
    instances_ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    first_errors: list[str] = field(default_factory=list)
    associations: int = 0
    requests: int = 0

    def error(self, what: str, detail: str) -> None:
        """Count an error; keep the first few details (with the wall-clock time)."""
        self.errors[what] = self.errors.get(what, 0) + 1
        if len(self.first_errors) < 10:
            at = datetime.now(UTC).strftime("%H:%M:%S")
            self.first_errors.append(f"{at} {what}: {detail[:300]}")


# --- C-STORE clients --------------------------------------------------------------------------


def _scu_loop(
    port: int,
    index: int,
    run: int,
    study_size: int,
    stop_at: float,
    rec: Record,
    lock: threading.Lock,
) -> None:
    from pynetdicom import AE

    uids = Uids(run, 100 + index)
    ae = AE(ae_title=f"LOADSCU{index}")
    ae.add_requested_context(MRImageStorage, ExplicitVRLittleEndian)
    while time.monotonic() < stop_at:
        study = uids.study(study_size, f"LOAD-C{index}")
        assoc = ae.associate("127.0.0.1", port, ae_title="MSLESION")
        if not assoc.is_established:
            with lock:
                rec.error("association refused or aborted", f"SCU {index}")
            time.sleep(0.5)
            continue
        with lock:
            rec.associations += 1
        try:
            for ds in study:
                started = time.perf_counter()
                status = assoc.send_c_store(ds)
                took = time.perf_counter() - started
                code = getattr(status, "Status", None)
                with lock:
                    if code == 0x0000:
                        rec.latencies_s.append(took)
                        rec.instances_ok += 1
                    else:
                        what = f"C-STORE status 0x{code:04X}" if code is not None else "no status"
                        rec.error(what, f"SCU {index}")
                if code is None:
                    break  # the association is gone
        finally:
            if assoc.is_established:
                assoc.release()


def cstore_clients(
    port: int, scus: int, run: int, study_size: int, duration_s: float, out: Any, log_path: str
) -> None:
    """Process body: ``scus`` SCU threads until the duration ends; the Record to ``out``.

    pynetdicom's warnings and errors (aborts, timeouts) go to ``log_path``."""
    import logging

    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(threadName)s %(levelname)s %(message)s"))
    logging.getLogger("pynetdicom").addHandler(handler)
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    rec, lock = Record("c-store"), threading.Lock()
    stop_at = time.monotonic() + duration_s
    threads = [
        threading.Thread(
            target=_scu_loop, args=(port, i, run, study_size, stop_at, rec, lock), daemon=True
        )
        for i in range(scus)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(asdict(rec))


# --- STOW-RS clients --------------------------------------------------------------------------


def _stow_body(instances: list[Dataset]) -> bytes:
    out = bytearray()
    for ds in instances:
        out += f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        out += part10(ds) + b"\r\n"
    out += f"--{BOUNDARY}--\r\n".encode()
    return bytes(out)


async def _stow_loop(
    client: httpx.AsyncClient, index: int, run: int, batch: int, stop_at: float, rec: Record
) -> None:
    uids = Uids(run, 200 + index)
    headers = {
        "Authorization": f"Bearer {client_key(index)}",
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={BOUNDARY}',
        "Accept": "application/dicom+json",
    }
    while time.monotonic() < stop_at:
        body = _stow_body(uids.study(batch, f"LOAD-S{index}"))
        started = time.perf_counter()
        try:
            response = await client.post("/dicom-web/studies", content=body, headers=headers)
        except httpx.HTTPError as exc:
            rec.error(f"transport {type(exc).__name__}", str(exc))
            await asyncio.sleep(0.5)
            continue
        took = time.perf_counter() - started
        rec.requests += 1
        if response.status_code == 200:
            rec.latencies_s.append(took)
            rec.instances_ok += batch
        else:
            rec.error(f"HTTP {response.status_code}", response.text)


async def _stow_all(url: str, clients: int, run: int, batch: int, duration_s: float) -> Record:
    rec = Record("stow-rs")
    stop_at = time.monotonic() + duration_s
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120.0, limits=limits) as client:
        await asyncio.gather(
            *(_stow_loop(client, i, run, batch, stop_at, rec) for i in range(clients))
        )
    return rec


def stow_clients(url: str, clients: int, run: int, batch: int, duration_s: float, out: Any) -> None:
    """Process body: ``clients`` concurrent STOW-RS clients; the Record to ``out``."""
    out.put(asdict(asyncio.run(_stow_all(url, clients, run, batch, duration_s))))


# --- the stack --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redis_flush(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


def _queued_jobs(url: str) -> int:
    """Messages waiting in the Celery queues of the private Redis database."""
    import redis

    client = redis.Redis.from_url(url)
    total = 0
    try:
        for key in client.scan_iter():
            if client.type(key) == b"list":
                total += int(cast(int, client.llen(key)))
    finally:
        client.close()
    return total


@dataclass
class Stack:
    """The node's processes under load and where their files are."""

    data_dir: Path
    db_url: str
    broker_url: str
    http_port: int
    dicom_port: int
    gateway: subprocess.Popen[bytes]
    listener: subprocess.Popen[bytes]
    logs: Path

    def stop(self) -> None:
        """SIGTERM both, SIGKILL after 20 s."""
        for proc in (self.gateway, self.listener):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (self.gateway, self.listener):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _env(
    data_dir: Path, db_url: str, broker: str, http_port: int, dicom_port: int, quiet_s: float
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSLESION_")}
    env.update(
        PYTHONUNBUFFERED="1",
        MSLESION_DATA_DIR=str(data_dir),
        MSLESION_DATABASE_URL=db_url,
        MSLESION_BROKER_URL=broker,
        MSLESION_HTTP_HOST="127.0.0.1",
        MSLESION_HTTP_PORT=str(http_port),
        MSLESION_DICOM_HOST="127.0.0.1",
        MSLESION_DICOM_PORT=str(dicom_port),
        MSLESION_MAX_ASSOCIATIONS="16",
        MSLESION_STUDY_QUIET_S=str(quiet_s),
    )
    return env


def _mslesion() -> list[str]:
    script = Path(sys.executable).parent / "mslesion"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mslesion.cli"]


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"port {port} not open after {timeout_s} s:\n{log.read_text()[-3000:]}")


def client_key(index: int) -> str:
    """The API key of STOW client ``index``: one per client, as each sender system has its
    own (the gateway's rate limit is per key)."""
    return f"{API_KEY}_{index}"


def start_stack(workdir: Path, quiet_s: float, stow_clients: int) -> Stack:
    """Database (created, migrated, an uploader key per STOW client), Redis index, gateway
    and listener."""
    from mslesion.services.store.database import Database
    from mslesion.services.store.repositories import keys

    db_url = create_database("mslesion_load")
    db = Database(db_url)
    with db.session() as session:
        for i in range(stow_clients):
            keys.create_key(session, f"load-uploader-{i}", Role.UPLOADER, client_key(i))
    db.dispose()
    broker = f"{REDIS_URL}/{REDIS_DB}"
    _redis_flush(broker)
    data_dir, logs = workdir / "node", workdir / "logs"
    logs.mkdir(parents=True)
    http_port, dicom_port = _free_port(), _free_port()
    env = _env(data_dir, db_url, broker, http_port, dicom_port, quiet_s)
    procs = {}
    for part in ("gateway", "listener"):
        with (logs / f"{part}.log").open("ab") as log:
            procs[part] = subprocess.Popen(
                [*_mslesion(), part], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
            )
    stack = Stack(
        data_dir, db_url, broker, http_port, dicom_port, procs["gateway"], procs["listener"], logs
    )
    try:
        _wait_port(http_port, stack.gateway, logs / "gateway.log", 60)
        _wait_port(dicom_port, stack.listener, logs / "listener.log", 60)
    except Exception:
        stack.stop()
        raise
    return stack


# --- memory -----------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def rss_mb(pid: int) -> float:
    """VmRSS of ``pid`` and its descendants, in MiB (0 when gone)."""
    total_kb = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
        pending += _children(current)
    return total_kb / 1024


@dataclass
class Sampler:
    """RSS of the gateway and listener, and the load average, every SAMPLE_EVERY_S."""

    pids: dict[str, int]
    samples: list[dict[str, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Sample until :meth:`stop`."""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        t0 = time.monotonic()
        while True:
            sample = {"t_s": round(time.monotonic() - t0, 1), "load1": os.getloadavg()[0]}
            sample.update({name: round(rss_mb(pid), 1) for name, pid in self.pids.items()})
            self.samples.append(sample)
            if self._stop.wait(SAMPLE_EVERY_S):
                return

    def stop(self) -> None:
        """Stop sampling (one last sample is taken)."""
        self._stop.set()
        if self._thread:
            self._thread.join()


def memory_summary(samples: list[dict[str, float]], names: list[str]) -> dict[str, Any]:
    """Median RSS in the first and the last minute, and the peak, per process."""
    end = samples[-1]["t_s"]
    out: dict[str, Any] = {}
    for name in names:
        first = [s[name] for s in samples if s["t_s"] <= 60]
        last = [s[name] for s in samples if s["t_s"] >= end - 60]
        out[name] = {
            "first_minute_median_mb": round(statistics.median(first), 1),
            "last_minute_median_mb": round(statistics.median(last), 1),
            "peak_mb": max(s[name] for s in samples),
        }
    return out


# --- summary ----------------------------------------------------------------------------------


def latency_summary(values: list[float]) -> dict[str, float | int]:
    """Count, median, p90, p99 and max, in milliseconds."""
    if not values:
        return {"count": 0}
    ordered = sorted(values)

    def pct(p: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(p * len(ordered)))], 2)

    return {
        "count": len(ordered),
        "median_ms": round(1000 * statistics.median(ordered), 2),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": round(1000 * ordered[-1], 2),
    }


def spool_files(data_dir: Path) -> int:
    """Files published in the spool (temporary ``.incoming-*`` files excluded)."""
    spool = data_dir / "spool"
    return sum(1 for p in spool.rglob("*") if p.is_file() and not p.name.startswith("."))


def _run_clients(args: argparse.Namespace, stack: Stack, run: int) -> list[dict[str, Any]]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    url = f"http://127.0.0.1:{stack.http_port}"
    procs = [
        ctx.Process(
            target=cstore_clients,
            args=(
                stack.dicom_port,
                args.scus,
                run,
                args.study_size,
                args.duration,
                queue,
                str(stack.logs / "scu.log"),
            ),
        ),
        ctx.Process(
            target=stow_clients,
            args=(url, args.stow_clients, run, args.batch, args.duration, queue),
        ),
    ]
    for p in procs:
        p.start()
    records = [queue.get(timeout=args.duration + 600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    return records


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the stack, load it, check nothing acknowledged is missing, tear down."""
    workdir = Path(tempfile.mkdtemp(prefix="mslesion-load-"))
    load_before = os.getloadavg()
    stack = start_stack(workdir, args.quiet_s, args.stow_clients)
    sampler = Sampler({"gateway": stack.gateway.pid, "listener": stack.listener.pid})
    try:
        sampler.start()
        started = time.monotonic()
        records = _run_clients(args, stack, run=int(time.time()) % 1_000_000)
        elapsed = time.monotonic() - started
        sampler.stop()
        time.sleep(1)
        alive = {"gateway": stack.gateway.poll() is None, "listener": stack.listener.poll() is None}
        published = spool_files(stack.data_dir)
        queued = _queued_jobs(stack.broker_url)
    finally:
        sampler.stop()
        stack.stop()
        _redis_flush(stack.broker_url)
        drop_database(stack.db_url)
    by_kind = {r["kind"]: r for r in records}
    acknowledged = sum(r["instances_ok"] for r in records)
    result = {
        "benchmark": "load_test",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "note": "shared machine: other work may run at the same time (see load1 samples)",
        },
        "config": {
            "duration_s": args.duration,
            "c_store_associations": args.scus,
            "instances_per_association": args.study_size,
            "stow_clients": args.stow_clients,
            "instances_per_stow_request": args.batch,
            "instance": "MR Image Storage, 64x64 16-bit, explicit VR little endian",
            "study_quiet_s": args.quiet_s,
            "worker": "none (jobs queue in Redis)",
        },
        "elapsed_s": round(elapsed, 1),
        "c_store": {
            "instances_ok": by_kind["c-store"]["instances_ok"],
            "associations": by_kind["c-store"]["associations"],
            "instances_per_s": round(by_kind["c-store"]["instances_ok"] / elapsed, 1),
            "latency_per_instance": latency_summary(by_kind["c-store"]["latencies_s"]),
            "errors": by_kind["c-store"]["errors"],
            "first_errors": by_kind["c-store"]["first_errors"],
        },
        "stow": {
            "requests": by_kind["stow-rs"]["requests"],
            "instances_ok": by_kind["stow-rs"]["instances_ok"],
            "instances_per_s": round(by_kind["stow-rs"]["instances_ok"] / elapsed, 1),
            "latency_per_request": latency_summary(by_kind["stow-rs"]["latencies_s"]),
            "errors": by_kind["stow-rs"]["errors"],
            "first_errors": by_kind["stow-rs"]["first_errors"],
        },
        "total_instances_per_s": round(acknowledged / elapsed, 1),
        "acknowledged": acknowledged,
        "in_spool_after": published,
        "lost": max(0, acknowledged - published),
        "stored_not_acknowledged": max(0, published - acknowledged),
        "jobs_queued_in_redis": queued,
        "processes_alive_at_end": alive,
        "memory": memory_summary(sampler.samples, ["gateway", "listener"]),
        "samples": sampler.samples,
    }
    races = _scu_races(stack.logs / "scu.log", result["c_store"]["errors"].get("no status", 0))
    result["c_store"]["errors_from_scu_race"] = races
    failed = node_errors(result) or result["lost"]
    if failed or not all(alive.values()):
        result["logs_kept_in"] = str(stack.logs)  # for the post-mortem
        shutil.rmtree(stack.data_dir, ignore_errors=True)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def _scu_races(scu_log: Path, no_status: int) -> int:
    """C-STORE errors caused by the load generator itself, not by the node.

    pynetdicom's requestor (3.0) pauses its association reactor thread before waiting for a
    C-STORE response, but the pause has a window: under heavy CPU contention the reactor
    can take the response off the queue itself ("Received unexpected C-STORE service
    message"), and the sending thread then waits until its DIMSE timeout. The node did
    answer (the instance is in the spool: ``stored_not_acknowledged``)."""
    if not no_status or not scu_log.exists():
        return 0
    return min(no_status, scu_log.read_text().count("Received unexpected C-STORE service"))


def node_errors(result: dict[str, Any]) -> int:
    """Errors attributable to the node: all, less those the SCU library's race explains."""
    c_store = sum(result["c_store"]["errors"].values()) - result["c_store"]["errors_from_scu_race"]
    return c_store + sum(result["stow"]["errors"].values())


def _print(result: dict[str, Any]) -> None:
    c, s, m = result["c_store"], result["stow"], result["memory"]
    cl, sl = c["latency_per_instance"], s["latency_per_request"]
    lines = [
        f"load test: {result['elapsed_s']} s, machine {result['machine']['cpus']} CPUs, "
        f"load average before {result['machine']['load_average_before']}, "
        f"after {result['machine']['load_average_after']}",
        f"C-STORE: {c['instances_ok']} instances in {c['associations']} associations, "
        f"{c['instances_per_s']}/s; per instance median {cl.get('median_ms')} ms, "
        f"p99 {cl.get('p99_ms')} ms; errors {c['errors'] or 0}",
        f"STOW-RS: {s['requests']} requests, {s['instances_ok']} instances, "
        f"{s['instances_per_s']}/s; per request median {sl.get('median_ms')} ms, "
        f"p99 {sl.get('p99_ms')} ms; errors {s['errors'] or 0}",
        f"total {result['total_instances_per_s']} instances/s; acknowledged "
        f"{result['acknowledged']}, in the spool {result['in_spool_after']}, "
        f"lost {result['lost']}; jobs queued {result['jobs_queued_in_redis']}",
        f"errors attributable to the node: {node_errors(result)} (C-STORE errors from the "
        f"SCU library's own race: {c['errors_from_scu_race']}, their instances stored: "
        f"{result['stored_not_acknowledged']})",
    ]
    for name, mem in m.items():
        lines.append(
            f"{name} RSS: first minute {mem['first_minute_median_mb']} MiB, last minute "
            f"{mem['last_minute_median_mb']} MiB, peak {mem['peak_mb']} MiB"
        )
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    """Run the load test; exit status 1 if anything failed or was lost."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load")
    parser.add_argument("--scus", type=int, default=8, help="parallel C-STORE associations")
    parser.add_argument("--study-size", type=int, default=20, help="instances per association")
    parser.add_argument("--stow-clients", type=int, default=20, help="concurrent STOW clients")
    parser.add_argument("--batch", type=int, default=10, help="instances per STOW request")
    parser.add_argument("--quiet-s", type=float, default=10.0, help="study quiet time")
    parser.add_argument("--json", type=Path, default=None, help="where to write the result")
    args = parser.parse_args(argv)
    result = run(args)
    out = args.json or REPO / "docs" / "results" / f"load_{datetime.now(UTC):%Y-%m-%d}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    _print(result)
    print(f"written to {out}")
    failed = node_errors(result) or result["lost"]
    return 1 if failed or not all(result["processes_alive_at_end"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
