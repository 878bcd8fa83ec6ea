"""API keys: stored only as SHA-256 digests, compared in constant time, revocation honoured."""

from __future__ import annotations

import hashlib
import inspect

from fastapi.testclient import TestClient
from sqlalchemy import text

from mslesion.services.store.enums import Role
from mslesion.services.store.repositories import keys
from tests.api.conftest import Gateway


def test_key_table_holds_only_sha256_digests(gateway: Gateway) -> None:
    with gateway.db.session() as session:
        rows = session.execute(text("SELECT * FROM api_keys")).mappings().all()
    assert len(rows) == len(Role)
    stored = {str(v) for row in rows for v in row.values() if v is not None}
    for plaintext in gateway.keys.values():
        assert not any(plaintext in value for value in stored)
        assert hashlib.sha256(plaintext.encode()).hexdigest() in stored
    for row in rows:
        digest = row["key_hash"]
        assert len(digest) == 64 and set(digest) <= set("0123456789abcdef")


def test_authenticate_compares_in_constant_time() -> None:
    assert "hmac.compare_digest" in inspect.getsource(keys.authenticate)


def test_key_differing_in_its_last_character_is_refused(
    client: TestClient, gateway: Gateway
) -> None:
    key = gateway.keys[Role.READER]
    near = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert client.get("/api/v1/jobs", headers={"X-API-Key": key}).status_code == 200
    assert client.get("/api/v1/jobs", headers={"X-API-Key": near}).status_code == 401
    assert client.get("/api/v1/jobs", headers={"X-API-Key": key[:-1]}).status_code == 401


def test_revoked_key_is_401(client: TestClient, gateway: Gateway) -> None:
    with gateway.db.session() as session:
        assert keys.revoke(session, "reader-key")
    response = client.get("/api/v1/jobs", headers=gateway.auth(Role.READER))
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]
