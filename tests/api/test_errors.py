"""Domain errors reach an HTTP caller as the status their class declares, in one handler."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from mslesion.services.errors import ConflictError, InputError, ModelError, MSLesionError
from mslesion.services.store.filestore import StorageFullError
from tests.api.conftest import Gateway

RAISED: dict[str, MSLesionError] = {
    "input": InputError("the FLAIR is missing"),
    "conflict": ConflictError("a key named 'x' exists already"),
    "model": ModelError("model folder /srv/models/x has no manifest.json"),
    "storage": StorageFullError(28, "no space left on the storage volume"),
    "plain": MSLesionError("MSLESION_BROKER_URL is not set"),
}


@pytest.fixture
def failing(gateway: Gateway, client: TestClient) -> TestClient:
    def fail(kind: str) -> None:
        raise RAISED[kind]

    gateway.app.add_api_route("/test-only/fail/{kind}", fail)
    return client


@pytest.mark.parametrize(
    ("kind", "status"),
    [("input", 422), ("conflict", 409), ("model", 503), ("storage", 507), ("plain", 500)],
)
def test_status_comes_from_the_error_class(failing: TestClient, kind: str, status: int) -> None:
    response = failing.get(f"/test-only/fail/{kind}")
    assert response.status_code == status
    assert response.status_code == RAISED[kind].http_status


def test_a_callers_mistake_is_explained(failing: TestClient) -> None:
    response = failing.get("/test-only/fail/conflict")
    assert response.json() == {"detail": "a key named 'x' exists already"}


def test_a_node_fault_is_logged_not_shown(
    failing: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="mslesion.api.main"):
        response = failing.get("/test-only/fail/model")
    assert "/srv/models" not in response.text and "ModelError" in response.json()["detail"]
    assert "/srv/models/x has no manifest.json" in caplog.text
