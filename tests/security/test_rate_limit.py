"""The request rate limit: a token bucket per API key, per client address without one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from mslesion.api.main import create_app
from mslesion.api.ratelimit import TokenBuckets
from mslesion.services.config import Settings
from mslesion.services.store.database import Database
from mslesion.services.store.enums import Role
from mslesion.services.store.repositories import keys
from tests.api.conftest import RecordingDispatcher

# One token a minute refills: nothing refills during the test, whatever the machine's speed.
PER_MINUTE = 3


@pytest.fixture
def limited(node_settings: Settings, node_db: Database) -> Iterator[tuple[TestClient, list[str]]]:
    """A gateway limited to PER_MINUTE requests a minute, and two reader keys."""
    with node_db.session() as session:
        made = [keys.create_key(session, f"reader-{i}", Role.READER) for i in range(2)]
    settings = node_settings.model_copy(update={"rate_limit_per_minute": PER_MINUTE})
    app = create_app(settings, node_db, RecordingDispatcher())
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client, made


def _get(client: TestClient, key: str | None = None) -> int:
    headers = {"X-API-Key": key} if key else {}
    return client.get("/api/v1/jobs", headers=headers).status_code


def test_over_the_limit_is_429_with_retry_after(limited: tuple[TestClient, list[str]]) -> None:
    client, (key, _) = limited
    _get(client, key)  # the key's first request is charged to the client address
    statuses = [_get(client, key) for _ in range(PER_MINUTE)]
    assert statuses == [200] * PER_MINUTE
    refused = client.get("/api/v1/jobs", headers={"X-API-Key": key})
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert "too many requests" in refused.json()["detail"]
    # Health probes are never limited.
    assert client.get("/health/live").status_code == 200


def test_each_accepted_key_has_its_own_bucket(limited: tuple[TestClient, list[str]]) -> None:
    client, (first, second) = limited
    assert _get(client, first) == 200  # address bucket: 2 left
    assert _get(client, second) == 200  # address bucket: 1 left
    for _ in range(PER_MINUTE):
        assert _get(client, first) == 200
    assert _get(client, first) == 429
    assert _get(client, second) == 200


def test_guessed_keys_share_the_client_address_bucket(
    limited: tuple[TestClient, list[str]],
) -> None:
    client, _ = limited
    statuses = [_get(client, f"msl_guess{i}") for i in range(PER_MINUTE + 2)]
    assert statuses[:PER_MINUTE] == [401] * PER_MINUTE
    assert statuses[PER_MINUTE:] == [429, 429]
    assert _get(client) == 429  # anonymous requests from that address too


def test_limit_zero_turns_it_off(node_settings: Settings, node_db: Database) -> None:
    app = create_app(
        node_settings.model_copy(update={"rate_limit_per_minute": 0}),
        node_db,
        RecordingDispatcher(),
    )
    with TestClient(app) as client:
        assert {client.get("/api/v1/jobs").status_code for _ in range(20)} == {401}


def test_default_limit_is_generous() -> None:
    assert Settings().rate_limit_per_minute == 600


def test_bucket_refills_at_the_configured_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(per_minute=60, clock=lambda: now[0])  # one token a second
    assert all(buckets.take("a") == 0.0 for _ in range(60))
    assert buckets.take("a") == pytest.approx(1.0)
    now[0] += 0.5
    assert buckets.take("a") == pytest.approx(0.5)
    now[0] += 0.5
    assert buckets.take("a") == 0.0
    now[0] += 3600
    assert sum(buckets.take("a") == 0.0 for _ in range(100)) == 60  # capped at one minute's
