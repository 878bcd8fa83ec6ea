"""A real Orthanc (the Debian package) as a test PACS: started, queried by REST, stopped.

Orthanc is configured from a generated JSON file in a private folder: its own HTTP and DICOM
ports, storage and index in that folder, no authentication, local access only, and a Lua
script that auto-routes each stable study to the mslesion listener (``OnStableStudy``), as a
hospital PACS routing rule would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.dicom_tools import require_tool

ORTHANC_AET = "ORTHANC"
NODE_MODALITY = "mslesion"  # the listener's name in DicomModalities (route.lua sends there)

# The shipped auto-routing rule (docker/orthanc/route.lua): stable studies' MR series go to the
# modality named "mslesion", unless the study already holds the node's SEG.
ROUTE_LUA = Path(__file__).resolve().parents[2] / "docker" / "orthanc" / "route.lua"


@dataclass
class Orthanc:
    """A running Orthanc process and its REST API."""

    folder: Path
    http_port: int
    dicom_port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    aet: str = ORTHANC_AET
    _client: httpx.Client = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._client = httpx.Client(base_url=self.url, timeout=30.0)

    @property
    def url(self) -> str:
        """Base URL of the REST API."""
        return f"http://127.0.0.1:{self.http_port}"

    def get(self, path: str) -> Any:
        """GET a REST resource and return its JSON."""
        response = self._client.get(path)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Any) -> Any:
        """POST a JSON body to a REST resource and return its JSON."""
        response = self._client.post(path, json=body)
        response.raise_for_status()
        return response.json()

    def find_series(self, study_uid: str) -> list[dict[str, str]]:
        """Main DICOM tags (Modality, SeriesInstanceUID, ...) of every series of a study."""
        found = self.post(
            "/tools/find",
            {"Level": "Series", "Query": {"StudyInstanceUID": study_uid}, "Expand": True},
        )
        return [dict(series["MainDicomTags"]) for series in found]

    def modalities_in_study(self, study_uid: str) -> list[str]:
        """The Modality of each series of a study (one entry per series)."""
        return sorted(series.get("Modality", "") for series in self.find_series(study_uid))

    def instances_of_series(self, series_uid: str) -> list[str]:
        """Orthanc ids of the instances of a series."""
        found = self.post(
            "/tools/find", {"Level": "Instance", "Query": {"SeriesInstanceUID": series_uid}}
        )
        return [str(item) for item in found]

    def instance_file(self, orthanc_id: str) -> bytes:
        """The stored DICOM file of an instance."""
        response = self._client.get(f"/instances/{orthanc_id}/file")
        response.raise_for_status()
        return response.content

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.process.poll() is None

    def stop(self) -> None:
        """Stop Orthanc (SIGTERM, then SIGKILL) and close the REST client."""
        self._client.close()
        stop_process(self.process)


def stop_process(process: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """Terminate a child process and wait for it; kill it if it does not stop in time."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=grace_s)


def orthanc_config(
    folder: Path,
    http_port: int,
    dicom_port: int,
    modalities: dict[str, tuple[str, str, int]],
    stable_age_s: int,
    lua_scripts: list[Path],
) -> dict[str, Any]:
    """Orthanc's configuration: private storage, local-only REST, the given peers."""
    return {
        "Name": "mslesion-e2e",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": ORTHANC_AET,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomModalities": {name: list(peer) for name, peer in modalities.items()},
        "StableAge": stable_age_s,
        "LuaScripts": [str(path) for path in lua_scripts],
        "Plugins": [],
        "ConcurrentJobs": 2,
        "HttpServerEnabled": True,
        "DicomServerEnabled": True,
    }


def orthanc_binary() -> str:
    """Path of the Orthanc server; skip (laptop) or fail (CI) when it is not installed."""
    return shutil.which("Orthanc") or require_tool("Orthanc")


def start_orthanc(
    folder: Path,
    http_port: int,
    dicom_port: int,
    modalities: dict[str, tuple[str, str, int]] | None = None,
    stable_age_s: int = 3,
    lua: str | None = None,
    ready_timeout_s: float = 60.0,
) -> Orthanc:
    """Start Orthanc in ``folder`` and wait until its REST ``/system`` answers.

    ``modalities`` maps a peer name to (AE title, host, port). ``lua`` is the text of a Lua
    script installed at start (e.g. :func:`route_to_node_lua`).
    """
    binary = orthanc_binary()
    folder.mkdir(parents=True, exist_ok=True)
    scripts: list[Path] = []
    if lua is not None:
        script = folder / "route.lua"
        script.write_text(lua)
        scripts.append(script)
    config_path = folder / "orthanc.json"
    config = orthanc_config(folder, http_port, dicom_port, modalities or {}, stable_age_s, scripts)
    config_path.write_text(json.dumps(config, indent=2))
    log_path = folder / "orthanc.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [binary, "--verbose", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=folder,
            env={**os.environ, "LANG": "C.UTF-8"},
        )
    orthanc = Orthanc(folder, http_port, dicom_port, process, log_path)
    try:
        _wait_ready(orthanc, ready_timeout_s)
    except BaseException:
        orthanc.stop()
        raise
    return orthanc


def _wait_ready(orthanc: Orthanc, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not orthanc.alive():
            raise RuntimeError(
                f"Orthanc exited with {orthanc.process.returncode}:\n"
                + orthanc.log_path.read_text(errors="replace")[-4000:]
            )
        try:
            system = orthanc.get("/system")
        except httpx.HTTPError:
            time.sleep(0.2)
            continue
        if system.get("DicomAet") == orthanc.aet:
            return
    raise TimeoutError(f"Orthanc REST API not ready after {timeout_s:.0f} s")


def route_to_node_lua() -> str:
    """The shipped auto-routing Lua script, sending stable studies to :data:`NODE_MODALITY`."""
    return ROUTE_LUA.read_text()
