"""Shared pytest fixtures."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mslesion.devtools.dicom_writer import StudyInfo
from mslesion.services.config import Settings
from mslesion.services.store.database import Database
from tests.dicom_patient import PATIENT_ID, PATIENT_NAME
from tests.geometry_corpus import LazyCorpus


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the shared real-MRI data (``../shared/data`` beside the repository).

    ``MSLESION_SHARED_DATA_DIR`` overrides the location. When the folder is absent the test
    is skipped, unless ``MSLESION_REQUIRE_SHARED_DATA=1`` (CI), where silently skipping the
    real-data tests would hide regressions, so the test fails instead.
    """
    override = os.environ.get("MSLESION_SHARED_DATA_DIR")
    root = (
        Path(override)
        if override
        else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    )
    if not root.is_dir():
        msg = f"../shared/data absent: {root} does not exist"
        if os.environ.get("MSLESION_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(f"{msg} (MSLESION_REQUIRE_SHARED_DATA=1)")
        pytest.skip(msg)
    return root


@pytest.fixture(scope="session")
def geometry_corpus(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> LazyCorpus:
    """The geometry corpus (oblique, sagittal, sheared... studies), each case written once."""
    return LazyCorpus(shared_data, tmp_path_factory.mktemp("geometry-corpus"))


# --- the PACS node's real services (PostgreSQL and Redis on this machine) --------------------

PG_ADMIN_URL = os.environ.get("MSLESION_TEST_PG", "postgresql+psycopg://postgres@localhost:5432")
REDIS_URL = os.environ.get("MSLESION_TEST_REDIS", "redis://localhost:6379")


def _pg_admin(sql: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(f"{PG_ADMIN_URL}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A PostgreSQL database migrated to head once per run; tests clone it (fast)."""
    from mslesion.services.store.database import migrate

    name = f"mslesion_tmpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    migrate(f"{PG_ADMIN_URL}/{name}")
    yield name
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_pg_database(template: str) -> Iterator[str]:
    """A migrated PostgreSQL database cloned from ``template``, dropped on exit."""
    name = f"mslesion_t_{uuid.uuid4().hex[:12]}"
    _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield f"{PG_ADMIN_URL}/{name}"
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_redis_db() -> Iterator[str]:
    """A Redis database number, flushed before and after use."""
    import redis

    db_index = 1 + (os.getpid() + uuid.uuid4().int) % 14
    url = f"{REDIS_URL}/{db_index}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    """URL of a fresh, migrated PostgreSQL database for one test, dropped afterwards."""
    with fresh_pg_database(pg_template) as url:
        yield url


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database number private to this test (flushed before and after)."""
    with fresh_redis_db() as url:
        yield url


@pytest.fixture
def node_settings(tmp_path: Path, pg_url: str) -> Settings:
    """Settings of a node whose files live in tmp_path and whose database is ``pg_url``."""
    return Settings(
        data_dir=tmp_path / "node",
        database_url=pg_url,
        study_quiet_s=1.0,
        dicom_port=0,
        http_port=0,
        forward_retry_backoff_s=0.2,
        job_retry_backoff_s=0.2,
    )


@pytest.fixture
def node_db(node_settings: Settings) -> Iterator[Database]:
    """A Database handle on the test's PostgreSQL database."""
    db = Database(node_settings.resolved_database_url())
    yield db
    db.dispose()


def free_port() -> int:
    """A TCP port free on localhost right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def study_info() -> StudyInfo:
    """Patient/study attributes of the synthetic studies (one StudyInstanceUID per session)."""
    return StudyInfo(
        patient_name=PATIENT_NAME,
        patient_id=PATIENT_ID,
        patient_birth_date="19800101",
        patient_sex="F",
        study_date="20240102",
        study_time="101500",
        accession_number="ACC123",
        study_description="MRI BRAIN MS",
    )
