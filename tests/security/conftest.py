"""Fixtures of the security tests: a test PKI made once per run, and the gateway fixtures of
tests/api (an app on the test's PostgreSQL with one key per role)."""

from __future__ import annotations

import pytest

from tests.api.conftest import client, gateway, live_url, phantom_run  # noqa: F401
from tests.security.pki import Pki, make_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A test CA with server and client certificates (openssl, made at test time)."""
    return make_pki(tmp_path_factory.mktemp("pki"))
