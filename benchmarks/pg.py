"""Throwaway PostgreSQL databases for the benchmarks (local server, trust auth)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text

from mslesion.services.store.database import migrate

PG_ADMIN_URL = os.environ.get("MSLESION_TEST_PG", "postgresql+psycopg://postgres@localhost:5432")


def _admin(sql: str) -> None:
    engine = create_engine(f"{PG_ADMIN_URL}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


def create_database(prefix: str = "mslesion_bench") -> str:
    """A fresh database migrated to head; its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}"')
    url = f"{PG_ADMIN_URL}/{name}"
    migrate(url)
    return url


def drop_database(url: str) -> None:
    """Drop a database made by :func:`create_database`."""
    _admin(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


@contextmanager
def throwaway_database(prefix: str = "mslesion_bench") -> Iterator[str]:
    """A migrated database for the ``with`` block, dropped afterwards."""
    url = create_database(prefix)
    try:
        yield url
    finally:
        drop_database(url)
