"""Liveness, readiness (database, broker, model) and the OpenAPI document."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from mslesion.api.main import create_app
from mslesion.services.config import Settings
from mslesion.services.store.database import Database
from tests.api.conftest import Gateway, RecordingDispatcher
from tests.conftest import free_port


def test_live_and_ready(client: TestClient) -> None:
    assert client.get("/health/live").json() == {"status": "alive"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"
    assert set(ready.json()["checks"]) == {"database", "broker", "model"}


def test_not_ready_when_the_broker_is_down(client: TestClient, gateway: Gateway) -> None:
    gateway.dispatcher.broken = True
    ready = client.get("/health/ready")
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["broker"]["ok"] is False and checks["database"]["ok"] is True


def test_not_ready_and_503_json_when_the_database_is_unreachable(node_settings: Settings) -> None:
    # A real PostgreSQL URL on a port where nothing listens.
    db = Database(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none")
    app = create_app(node_settings, db, RecordingDispatcher())
    with TestClient(app, raise_server_exceptions=False) as client:
        ready = client.get("/health/ready")
        jobs = client.get("/api/v1/jobs", headers={"X-API-Key": "msl_any"})
        model_dir_ok = ready.json()["checks"]["model"]["ok"]
    db.dispose()
    assert ready.status_code == 503 and ready.json()["checks"]["database"]["ok"] is False
    assert "postgres@" not in ready.text  # no connection URL in the answer
    assert model_dir_ok is True
    assert jobs.status_code == 503 and "database" in jobs.json()["detail"]


def test_not_ready_when_the_model_does_not_match_its_manifest(
    node_settings: Settings, node_db: Database, tmp_path: Path
) -> None:
    broken = tmp_path / "model"
    broken.mkdir()
    (broken / "manifest.json").write_text("{}")
    settings = node_settings.model_copy(update={"model_dir": broken})
    with TestClient(create_app(settings, node_db, RecordingDispatcher())) as client:
        ready = client.get("/health/ready")
    assert ready.status_code == 503
    assert "invalid manifest" in ready.json()["checks"]["model"]["detail"]


def test_openapi_document(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert "/dicom-web/studies" in doc["paths"]
    assert "/api/v1/patients/{patient_id}/lesion-load" in doc["paths"]
    schemes = doc["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"http", "apiKey"}
    assert client.get("/docs").status_code == 200
    unknown = client.get("/no/such/route")
    assert unknown.status_code == 404 and unknown.json() == {"detail": "Not Found"}
