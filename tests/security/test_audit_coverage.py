"""The audit trail covers every read of patient data: each GET route of the OpenAPI schema
(health probes aside) writes exactly one event per call, authorised or denied, with actor,
action, resource, client and outcome."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from mslesion.services.store.enums import Role
from mslesion.services.store.repositories import audit
from mslesion.services.store.tables import AuditEvent
from tests.api.conftest import Gateway
from tests.api.seeding import PhantomRun
from tests.security.seeded import fill, seed

PUBLIC_PREFIXES = ("/health/",)
# The routes serving patient data; the schema must still list each (a renamed route fails).
PATIENT_DATA = {
    "/api/v1/jobs",
    "/api/v1/jobs/{job_id}",
    "/api/v1/jobs/{job_id}/results/{kind}",
    "/dicom-web/series",
    "/dicom-web/instances",
    "/dicom-web/studies/{study}",
    "/dicom-web/studies/{study}/series",
    "/dicom-web/studies/{study}/series/{series}",
    "/dicom-web/studies/{study}/series/{series}/metadata",
    "/dicom-web/studies/{study}/series/{series}/instances",
    "/dicom-web/studies/{study}/series/{series}/instances/{sop}",
    "/dicom-web/studies/{study}/series/{series}/instances/{sop}/metadata",
    "/api/v1/patients/{patient_id}/lesion-load",
    "/api/v1/patients/{patient_id}/lesion-load.png",
    "/api/v1/patients/{patient_id}/lesions",
    "/api/v1/comparisons/{comparison_id}",
    "/api/v1/comparisons/{comparison_id}/results/{name}",
    "/api/v1/audit",
}


def _get_routes(client: TestClient) -> list[str]:
    schema: dict[str, Any] = client.get("/openapi.json").json()
    return sorted(
        path
        for path, operations in schema["paths"].items()
        if "get" in operations and not path.startswith(PUBLIC_PREFIXES)
    )


def _events(gateway: Gateway) -> list[AuditEvent]:
    with gateway.db.session() as session:
        return audit.events(session, limit=10_000)


def _call_once(
    client: TestClient, gateway: Gateway, url: str, headers: dict[str, str]
) -> tuple[int, AuditEvent]:
    before = len(_events(gateway))
    status = client.get(url, headers=headers).status_code
    after = _events(gateway)
    assert len(after) == before + 1, f"{url} wrote {len(after) - before} audit events"
    return status, after[0]


@pytest.fixture
def values(gateway: Gateway, phantom_run: PhantomRun) -> dict[str, str]:
    """Path parameters naming the seeded job's real results."""
    return seed(gateway, phantom_run)


def test_the_patient_data_routes_are_all_in_the_schema(client: TestClient) -> None:
    assert set(_get_routes(client)) >= PATIENT_DATA


def test_each_authorised_read_writes_one_complete_event(
    client: TestClient, gateway: Gateway, values: dict[str, str]
) -> None:
    for template in _get_routes(client):
        url = fill(template, values)
        status, event = _call_once(client, gateway, url, gateway.auth(Role.ADMIN))
        assert status == 200, url
        assert (event.actor, event.role) == ("admin-key", "admin"), url
        assert event.action and not event.action.startswith("denied"), url
        assert event.resource == url
        assert event.client == "testclient"
        assert event.outcome == 200
        assert event.at is not None


def test_each_denied_read_writes_one_event(
    client: TestClient, gateway: Gateway, values: dict[str, str]
) -> None:
    for template in _get_routes(client):
        url = fill(template, values)
        status, event = _call_once(client, gateway, url, {})
        assert (status, event.outcome) == (401, 401), url
        assert event.actor == "anonymous" and event.action.startswith("denied: "), url
        assert event.resource == url and event.client == "testclient"
        status, event = _call_once(client, gateway, url, {"X-API-Key": "msl_wrong"})
        assert (status, event.outcome, event.actor) == (401, 401, "unknown key"), url


def test_forbidden_reads_are_audited_with_the_caller(
    client: TestClient, gateway: Gateway, values: dict[str, str]
) -> None:
    uploader = gateway.auth(Role.UPLOADER)
    for template in (
        "/api/v1/jobs/{job_id}/results/{kind}",
        "/api/v1/patients/{patient_id}/lesion-load",
        "/dicom-web/series",
        "/api/v1/audit",
    ):
        status, event = _call_once(client, gateway, fill(template, values), uploader)
        assert (status, event.outcome) == (403, 403)
        assert (event.actor, event.role) == ("uploader-key", "uploader")
        assert event.action.startswith("denied: ")


def test_the_job_list_is_audited_for_uploaders_too(client: TestClient, gateway: Gateway) -> None:
    status, event = _call_once(client, gateway, "/api/v1/jobs?limit=5", gateway.auth(Role.UPLOADER))
    assert status == 200
    assert event.resource == "/api/v1/jobs?limit=5"
    assert (event.actor, event.outcome) == ("uploader-key", 200)
