"""CORS is closed unless origins are configured; then only those origins get the headers."""

from __future__ import annotations

from fastapi.testclient import TestClient

from mslesion.api.main import create_app
from mslesion.services.config import Settings
from mslesion.services.store.database import Database
from tests.api.conftest import RecordingDispatcher

PREFLIGHT = {
    "Access-Control-Request-Method": "GET",
    "Access-Control-Request-Headers": "authorization",
}


def _preflight(client: TestClient, origin: str) -> dict[str, str]:
    response = client.options("/api/v1/jobs", headers={"Origin": origin, **PREFLIGHT})
    return {k.lower(): v for k, v in response.headers.items()}


def test_cross_origin_preflight_gets_no_allow_origin_by_default(client: TestClient) -> None:
    headers = _preflight(client, "https://viewer.example.org")
    assert "access-control-allow-origin" not in headers
    plain = client.get("/health/live", headers={"Origin": "https://viewer.example.org"})
    assert "access-control-allow-origin" not in {k.lower() for k in plain.headers}


def test_configured_origin_is_allowed_and_others_are_not(
    node_settings: Settings, node_db: Database
) -> None:
    settings = node_settings.model_copy(update={"cors_origins": ["https://viewer.example.org"]})
    app = create_app(settings, node_db, RecordingDispatcher())
    with TestClient(app) as client:
        allowed = _preflight(client, "https://viewer.example.org")
        assert allowed["access-control-allow-origin"] == "https://viewer.example.org"
        assert "authorization" in allowed["access-control-allow-headers"].lower()
        other = _preflight(client, "https://evil.example.com")
        assert "access-control-allow-origin" not in other
