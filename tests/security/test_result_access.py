"""Result files leave only through authorised routes: nothing of data_dir is mounted, and path
traversal in result and WADO-RS URLs (``..``, ``%2e%2e``, encoded slashes, absolute paths)
answers 404 or 422, never a file."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

from fastapi.testclient import TestClient
from starlette.routing import Mount

from mslesion.services.store.enums import Role
from tests.api.conftest import Gateway
from tests.api.seeding import PhantomRun
from tests.security.seeded import seed

SECRET = "SECRET-FILE-CONTENT-7731"
TRAVERSALS = (
    "/api/v1/jobs/../../../../etc/passwd",
    "/api/v1/jobs/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/api/v1/jobs/{job}/results/../../secret.txt",
    "/api/v1/jobs/{job}/results/..%2f..%2fsecret.txt",
    "/api/v1/jobs/{job}/results/%2e%2e%2f%2e%2e%2fsecret.txt",
    "/api/v1/jobs/{job}/results/%2fetc%2fpasswd",
    "/api/v1/jobs/{job}/results//etc/passwd",
    "/api/v1/jobs/..%2f..%2fsecret.txt/results/seg",
    "/api/v1/jobs/%2e%2e/results/seg",
    "/dicom-web/studies/..%2f..%2fresults/series/x/instances/secret.txt",
    "/dicom-web/studies/%2e%2e/series/%2e%2e/instances/secret.txt",
    "/dicom-web/studies/{study}/series/..%2f..%2f..%2fsecret.txt",
    "/dicom-web/studies/{study}/series/{series}/instances/..%2f..%2fsecret.txt",
    "/dicom-web/studies//etc/passwd",
    "/api/v1/patients/..%2f..%2fetc%2fpasswd/lesion-load",
    "/api/v1/patients/%2e%2e/lesion-load.png",
    "//etc/passwd",
    "/results/secret.txt",
    "/spool/secret.txt",
    "/data/results/secret.txt",
    "/static/secret.txt",
    "/secret.txt",
)


def test_no_static_files_are_mounted(gateway: Gateway) -> None:
    assert not [r for r in gateway.app.routes if isinstance(r, Mount)]


def test_traversal_never_returns_a_file(
    gateway: Gateway, live_url: str, phantom_run: PhantomRun
) -> None:
    values = seed(gateway, phantom_run)
    for folder in (gateway.settings.data_dir, gateway.settings.results_dir):
        (folder / "secret.txt").write_text(SECRET)
    (gateway.settings.spool_dir / "secret.txt").write_text(SECRET)
    wrong = []
    for target in TRAVERSALS:
        path = target.format(job=values["job_id"], study=values["study"], series=values["series"])
        status, body = _raw_get(live_url, path, gateway.keys[Role.ADMIN])
        if status not in (404, 422) or SECRET in body or "root:" in body:
            wrong.append(f"{path}: {status} {body[:120]}")
    assert not wrong, "\n".join(wrong)


def _raw_get(base_url: str, target: str, key: str) -> tuple[int, str]:
    """GET ``target`` exactly as written (httpx would normalise ``..`` away)."""
    netloc = urlsplit(base_url)
    conn = http.client.HTTPConnection(netloc.hostname or "127.0.0.1", netloc.port, timeout=30)
    try:
        conn.request("GET", target, headers={"X-API-Key": key})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


def test_result_download_needs_a_reader(
    client: TestClient, gateway: Gateway, phantom_run: PhantomRun
) -> None:
    url = f"/api/v1/jobs/{seed(gateway, phantom_run)['job_id']}/results/seg"
    assert client.get(url).status_code == 401
    assert client.get(url, headers=gateway.auth(Role.UPLOADER)).status_code == 403
    response = client.get(url, headers=gateway.auth(Role.READER))
    assert response.status_code == 200 and response.content[128:132] == b"DICM"
