"""Fixtures of the worker tests: a module-wide node (PostgreSQL database, Redis broker,
spool) so the one expensive real-anatomy job runs once and several tests read it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import fresh_pg_database, fresh_redis_db


@pytest.fixture(scope="module")
def module_pg_url(pg_template: str) -> Iterator[str]:
    """A fresh migrated PostgreSQL database shared by one test module."""
    with fresh_pg_database(pg_template) as url:
        yield url


@pytest.fixture(scope="module")
def module_redis_url() -> Iterator[str]:
    """A Redis database number for one test module (flushed before and after)."""
    with fresh_redis_db() as url:
        yield url


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary folder shared by one test module."""
    return tmp_path_factory.mktemp("worker")
