"""Fixtures of the worker tests: a module-wide node (PostgreSQL database, Redis broker,
spool) so the one expensive real-anatomy job runs once and several tests read it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PG_ADMIN_URL, REDIS_URL, _pg_admin


@pytest.fixture(scope="module")
def module_pg_url(pg_template: str) -> Iterator[str]:
    """A fresh migrated PostgreSQL database shared by one test module."""
    name = f"mslesion_m_{uuid.uuid4().hex[:12]}"
    _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    yield f"{PG_ADMIN_URL}/{name}"
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def module_redis_url() -> Iterator[str]:
    """A Redis database number for one test module (flushed before and after)."""
    import redis

    db_index = 1 + (os.getpid() + uuid.uuid4().int) % 14
    url = f"{REDIS_URL}/{db_index}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary folder shared by one test module."""
    return tmp_path_factory.mktemp("worker")
