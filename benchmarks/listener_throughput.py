"""Instances per second received by the listener (durable writes + database rows) vs dcmtk.

    python benchmarks/listener_throughput.py [--count 500] [--size 256] [--repeats 5]
        [--database-url postgresql+psycopg://...] [--json docs/results/listener_throughput.json]

Each repeat writes a fresh set of ``count`` single-frame MR instances (``size``² 16-bit, new
UIDs, so the listener never sees a duplicate), then sends it with the same dcmtk ``storescu``
command (one association, all files) to (a) dcmtk ``storescp`` writing into a folder, the
baseline, (b) the mslesion Listener, which fsyncs each file and commits its row in
PostgreSQL before answering, and (c) the same pynetdicom AE with a handler that stores
nothing (the framework's ceiling, to tell framework cost from durability cost) and (d) Orthanc,
when installed, as a PACS-class receiver that also indexes what it stores. The order
alternates between repeats. The result is the median
instances/s of each and their ratio (target: listener ≥ 0.8 × storescp).

Without ``--database-url`` a throwaway database is created (and dropped) on the local
PostgreSQL (``MSLESION_TEST_PG``, default postgresql+psycopg://postgres@localhost:5432).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid
from pynetdicom import evt
from sqlalchemy import create_engine, text

from benchmarks.pg import throwaway_database
from mslesion.services.config import REPO_ROOT, Settings
from mslesion.services.listener import Listener
from mslesion.services.listener.server import build_ae
from mslesion.services.store.database import Database

# Debian's dcmtk leaves Nagle's algorithm on unless TCP_NODELAY=1: with it on, delayed ACKs cap
# any receiver at a few dozen instances/s and the run measures TCP timers, not the receivers.
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}
DEFAULT_JSON = REPO_ROOT / "docs" / "results" / "listener_throughput.json"


def write_instances(folder: Path, count: int, size: int) -> int:
    """``count`` MR instances of one new study and series; returns the bytes written."""
    folder.mkdir(parents=True)
    study_uid, series_uid = generate_uid(), generate_uid()
    pixels = np.random.default_rng(0).integers(0, 4000, (size, size), dtype=np.uint16).tobytes()
    total = 0
    for number in range(1, count + 1):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.Modality = "MR"
        ds.PatientName, ds.PatientID, ds.StudyDate = "BENCH^LISTENER", "BENCH01", "20240101"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SeriesNumber, ds.InstanceNumber = 1, number
        ds.ImagePositionPatient = [0.0, 0.0, float(number)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing, ds.SliceThickness = [1.0, 1.0], 1.0
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows = ds.Columns = size
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = pixels
        path = folder / f"{number:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        total += path.stat().st_size
    return total


def send(folder: Path, port: int, called: str) -> float:
    """Seconds storescu takes to send every file of ``folder`` in one association."""
    cmd = ["storescu", "-aet", "BENCH", "-aec", called, "+sd", "127.0.0.1", str(port), str(folder)]
    started = time.perf_counter()
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=1800, check=False, env=DCMTK_ENV
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"storescu to {called} failed: {result.stderr[-2000:]}")
    return elapsed


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, timeout_s: float = 20.0) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def run_storescp(folder: Path, out_dir: Path) -> float:
    """Baseline: dcmtk storescp writing each instance into ``out_dir``."""
    out_dir.mkdir(parents=True)
    port = _free_port()
    proc = subprocess.Popen(
        ["storescp", "-aet", "STORESCP", "-od", str(out_dir), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=DCMTK_ENV,
    )
    try:
        _wait_listening(port)
        return send(folder, port, "STORESCP")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"


def run_orthanc(folder: Path, out_dir: Path) -> float:
    """A second baseline, a PACS-class receiver: Orthanc (files + SQLite index)."""
    out_dir.mkdir(parents=True)
    port, http_port = _free_port(), _free_port()
    config = {
        "Name": "bench",
        "StorageDirectory": str(out_dir / "storage"),
        "IndexDirectory": str(out_dir / "index"),
        "DicomAet": "ORTHANC",
        "DicomPort": port,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "Plugins": [],
    }
    (out_dir / "orthanc.json").write_text(json.dumps(config))
    proc = subprocess.Popen(
        [ORTHANC, str(out_dir / "orthanc.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=DCMTK_ENV,
    )
    try:
        _wait_listening(port)
        return send(folder, port, "ORTHANC")
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def run_pynetdicom_noop(folder: Path, _out: Path) -> float:
    """The framework's ceiling: the listener's AE whose C-STORE handler stores nothing."""
    ae = build_ae(Settings(dicom_port=0))
    server = ae.start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, lambda _event: 0x0000)]
    )
    assert server is not None  # block=False returns the running server
    try:
        return send(folder, int(server.server_address[1]), ae.ae_title)
    finally:
        server.shutdown()


def run_listener(folder: Path, data_dir: Path, database_url: str) -> float:
    """The product: the Listener with durable spool writes and PostgreSQL rows."""
    settings = Settings(data_dir=data_dir, database_url=database_url, dicom_port=0)
    db = Database(database_url)
    listener = Listener(settings, db)
    port = listener.start()
    try:
        return send(folder, port, settings.ae_title)
    finally:
        listener.stop()
        db.dispose()


def _pg_settings(url: str) -> dict[str, str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                key: str(conn.execute(text(f"SHOW {key}")).scalar())
                for key in ("server_version", "fsync", "synchronous_commit")
            }
    finally:
        engine.dispose()


def measure(args: argparse.Namespace, database_url: str, work: Path) -> dict[str, object]:
    """Alternate storescp and the listener ``repeats`` times; medians and ratio."""
    runners: dict[str, Callable[[Path, Path], float]] = {
        "storescp": run_storescp,
        "listener": lambda folder, out: run_listener(folder, out, database_url),
        "pynetdicom_noop": run_pynetdicom_noop,
    }
    if Path(ORTHANC).exists():
        runners["orthanc"] = run_orthanc
    rates: dict[str, list[float]] = {name: [] for name in runners}
    size_bytes = 0
    for repeat in range(args.repeats):
        order = list(runners) if repeat % 2 == 0 else list(reversed(runners))
        for name in order:
            folder = work / f"send-{repeat}-{name}"
            size_bytes = write_instances(folder, args.count, args.size)
            out = work / f"recv-{repeat}-{name}"
            seconds = runners[name](folder, out)
            received = sum(1 for p in out.rglob("*") if p.is_file()) if out.exists() else 0
            if name in ("storescp", "listener") and received != args.count:
                raise RuntimeError(f"{name} kept {received} of {args.count} instances")
            rates[name].append(args.count / seconds)
            print(f"repeat {repeat + 1} {name:15s}: {args.count / seconds:7.1f} instances/s")
            shutil.rmtree(folder)
            shutil.rmtree(out, ignore_errors=True)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "instances_per_run": args.count,
        "instance": f"MR Image Storage, {args.size}x{args.size} 16-bit, explicit VR LE",
        "mean_file_bytes": round(size_bytes / args.count),
        "repeats": args.repeats,
        "sender": "dcmtk storescu, one association, all files (+sd), TCP_NODELAY=1",
        "postgres": _pg_settings(database_url),
        "instances_per_s": {name: [round(v, 1) for v in values] for name, values in rates.items()},
        "median_instances_per_s": {name: round(v, 1) for name, v in medians.items()},
        "ratio_listener_vs_storescp": round(medians["listener"] / medians["storescp"], 3),
        "ratio_vs_storescp": {
            name: round(value / medians["storescp"], 3) for name, value in medians.items()
        },
        "target_ratio": 0.8,
        "notes": "storescp writes without fsync; the listener fsyncs each file and its folder "
        "and commits its PostgreSQL row before answering 0x0000. pynetdicom_noop is the "
        "listener's AE answering 0x0000 without storing: the Python framework's ceiling. orthanc: "
        "Orthanc (Debian package) with default storage, a PACS-class receiver.",
        "load_average_after": list(os.getloadavg()),
    }


def main() -> None:
    """Run the comparison, print it and write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--database-url", help="default: a throwaway database on local PostgreSQL")
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    ap.add_argument("--workdir", type=Path, help="scratch folder (default: system temp)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for tool in ("storescu", "storescp"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not installed (apt: dcmtk)")
    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        if args.database_url:
            result = measure(args, args.database_url, Path(scratch))
        else:
            with throwaway_database() as url:
                result = measure(args, url, Path(scratch))
    medians = result["median_instances_per_s"]
    print(f"medians (instances/s): {medians}; ratio {result['ratio_listener_vs_storescp']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
