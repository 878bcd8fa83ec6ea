"""Alembic migrations on the real PostgreSQL, and the schema they build matching the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from mslesion.services.store.database import Database, migrate
from mslesion.services.store.tables import Base


def test_migrations_build_every_table(pg_url: str) -> None:
    engine = create_engine(pg_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {t.name for t in Base.metadata.sorted_tables} <= tables
    assert "alembic_version" in tables


def test_schema_matches_the_models(pg_url: str) -> None:
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diff == [], f"models and migrations disagree; write a migration: {diff}"


def test_upgrade_is_idempotent(pg_url: str) -> None:
    migrate(pg_url)  # already at head: nothing to do, no error
    Database(pg_url).ping()


def test_sqlite_embedded_mode_migrates(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'node.db'}"
    Database(url).migrate()
    engine = create_engine(url)
    try:
        assert "jobs" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
