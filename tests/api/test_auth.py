"""API keys and roles: 401 without a valid key, 403 for the wrong role, denials audited."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from mslesion.services.store.enums import Role
from mslesion.services.store.repositories import audit, keys
from tests.api.conftest import Gateway
from tests.api.stow_body import CONTENT_TYPE

JOB = f"/api/v1/jobs/{uuid.uuid4()}"


def test_no_credentials_is_401_with_bearer_challenge(client: TestClient) -> None:
    for method, url in (
        ("GET", "/api/v1/jobs"),
        ("GET", JOB),
        ("POST", "/dicom-web/studies"),
        ("GET", "/dicom-web/series"),
        ("GET", "/api/v1/patients/P1/lesion-load"),
        ("GET", "/api/v1/audit"),
    ):
        response = client.request(method, url)
        assert response.status_code == 401, (url, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert "API key" in response.json()["detail"]


def test_unknown_and_revoked_keys_are_401(client: TestClient, gateway: Gateway) -> None:
    assert client.get("/api/v1/jobs", headers={"X-API-Key": "msl_nonsense"}).status_code == 401
    with gateway.db.session() as session:
        keys.revoke(session, "reader-key")
    response = client.get("/api/v1/jobs", headers=gateway.auth(Role.READER))
    assert response.status_code == 401


def test_both_header_forms_are_accepted(client: TestClient, gateway: Gateway) -> None:
    bearer = client.get("/api/v1/jobs", headers=gateway.auth(Role.READER))
    api_key = client.get("/api/v1/jobs", headers={"X-API-Key": gateway.keys[Role.READER]})
    assert bearer.status_code == api_key.status_code == 200


def test_wrong_role_is_403(client: TestClient, gateway: Gateway) -> None:
    reader, uploader = gateway.auth(Role.READER), gateway.auth(Role.UPLOADER)
    cases = [
        client.post("/dicom-web/studies", headers={**reader, "Content-Type": CONTENT_TYPE}),
        client.post("/api/v1/uploads", headers={**reader, "Content-Type": "application/zip"}),
        client.get(f"{JOB}/results/seg", headers=uploader),
        client.get("/dicom-web/series", headers=uploader),
        client.get("/api/v1/patients/P1/lesion-load", headers=uploader),
        client.get("/api/v1/audit", headers=reader),
        client.post(f"{JOB}/forward", headers=reader),
    ]
    for response in cases:
        assert response.status_code == 403, response.text
        assert "may not" in response.json()["detail"]


def test_admin_may_do_everything(client: TestClient, gateway: Gateway) -> None:
    admin = gateway.auth(Role.ADMIN)
    assert client.get("/api/v1/jobs", headers=admin).status_code == 200
    assert client.get("/dicom-web/series", headers=admin).status_code == 200
    assert client.get("/api/v1/audit", headers=admin).status_code == 200
    assert client.get(JOB, headers=admin).status_code == 404


def test_denials_are_audited_without_the_key(client: TestClient, gateway: Gateway) -> None:
    client.get("/api/v1/patients/P7/lesion-load", headers={"X-API-Key": "msl_guess"})
    client.get("/api/v1/audit", headers=gateway.auth(Role.UPLOADER))
    with gateway.db.session() as session:
        events = audit.events(session)
    by_outcome = {e.outcome: e for e in events}
    anonymous, forbidden = by_outcome[401], by_outcome[403]
    assert anonymous.actor == "unknown key" and "msl_guess" not in anonymous.resource
    assert anonymous.action == "denied: read lesion-load"
    assert anonymous.resource == "/api/v1/patients/P7/lesion-load"
    assert anonymous.client
    assert (forbidden.actor, forbidden.role) == ("uploader-key", "uploader")
