"""The node's CLI commands: migrate, keys, and clear refusals when a part lacks its broker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

MSLESION = str(Path(sys.executable).with_name("mslesion"))


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env}
    return subprocess.run(
        [MSLESION, *args], env=full, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def env(pg_url: str, tmp_path: Path) -> dict[str, str]:
    return {"MSLESION_DATABASE_URL": pg_url, "MSLESION_DATA_DIR": str(tmp_path / "node")}


def test_migrate_on_a_fresh_sqlite_node(tmp_path: Path) -> None:
    result = run(["migrate"], {"MSLESION_DATA_DIR": str(tmp_path / "node")})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "node" / "mslesion.db").is_file()


def test_keys_create_prints_only_the_key_and_stores_its_hash(
    env: dict[str, str], pg_url: str
) -> None:
    result = run(["keys", "create", "radiology-viewer", "--role", "reader"], env)
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert key.startswith("msl_") and len(key) > 40 and "\n" not in key
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT name, role, key_hash FROM api_keys")).all()
    finally:
        engine.dispose()
    assert [(n, r) for n, r, _ in stored] == [("radiology-viewer", "reader")]
    assert key not in stored[0][2] and len(stored[0][2]) == 64


def test_keys_list_and_revoke(env: dict[str, str]) -> None:
    assert run(["keys", "create", "script", "--role", "uploader"], env).returncode == 0
    listed = run(["keys", "list"], env)
    assert "script\tuploader" in listed.stdout and "active" in listed.stdout
    assert run(["keys", "revoke", "script"], env).returncode == 0
    assert "revoked" in run(["keys", "list"], env).stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["keys", "create", "x", "--role", "superuser"], "'superuser' is not one of"),
        (["keys", "revoke", "nobody"], "no key named 'nobody'"),
    ],
)
def test_key_mistakes_exit_2_with_one_line(
    env: dict[str, str], args: list[str], message: str
) -> None:
    result = run(args, env)
    assert result.returncode == 2
    assert message in result.stderr


def test_duplicate_key_name_is_refused(env: dict[str, str]) -> None:
    assert run(["keys", "create", "twice"], env).returncode == 0
    result = run(["keys", "create", "twice"], env)
    assert result.returncode == 2 and "exists already" in result.stderr


@pytest.mark.parametrize("part", ["gateway", "listener", "worker"])
def test_parts_without_a_broker_refuse_clearly(env: dict[str, str], part: str) -> None:
    result = run([part], {**env, "MSLESION_BROKER_URL": ""})
    assert result.returncode == 2
    assert "MSLESION_BROKER_URL is not set" in result.stderr
