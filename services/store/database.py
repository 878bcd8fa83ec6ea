"""The database handle: engine, sessions, migrations (PostgreSQL; SQLite when embedded)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from mslesion.services.config import MIGRATIONS_DIR


class Database:
    """An engine plus a session factory. One per process; safe to share between threads."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _create_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back when it raises."""
        with self._sessions() as session, session.begin():
            yield session

    def ping(self) -> None:
        """Raise if the database cannot be reached."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        migrate(self.url)

    def dispose(self) -> None:
        """Close pooled connections (e.g. after a fork)."""
        self.engine.dispose()


def _create_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        db_path = url.split("///", 1)[-1]
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_pre_ping=True
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # No pre-ping (one round trip per checkout on the ingest hot path): a connection broken
    # by a server restart raises once, is invalidated, and the sender's retry gets a new one.
    return create_engine(url, pool_size=10, max_overflow=20, connect_args=_pg_args(url))


def _pg_args(url: str) -> dict[str, Any]:
    # Fail fast when PostgreSQL is unreachable so the listener can answer 0xA7xx promptly.
    return {"connect_timeout": 5} if url.startswith("postgresql") else {}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the gateway read while the listener and the in-process worker write;
    # synchronous=FULL makes a commit durable before C-STORE is acknowledged.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def migrate(url: str) -> None:
    """Run ``alembic upgrade head`` against ``url`` with the shipped migrations."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(cfg, "head")
