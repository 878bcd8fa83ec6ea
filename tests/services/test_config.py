"""The settings' invariants are validators: a bad value stops the node with the rule it broke."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from mslesion.services.config import (
    JOB_SOFT_TIME_LIMIT_S,
    JOB_TIME_LIMIT_S,
    UID_ROOT_MAX_LENGTH,
    Settings,
    get_settings,
)
from mslesion.services.errors import ConfigError, MSLesionError


def test_the_defaults_keep_every_rule() -> None:
    settings = Settings()
    assert settings.job_lease_s > JOB_TIME_LIMIT_S > JOB_SOFT_TIME_LIMIT_S


@pytest.mark.parametrize("lease_s", [60.0, float(JOB_TIME_LIMIT_S)])
def test_a_lease_within_the_hard_time_limit_is_refused(lease_s: float) -> None:
    with pytest.raises(ValidationError, match="must exceed the worker's hard time limit"):
        Settings(job_lease_s=lease_s)


def test_a_lease_beyond_the_hard_time_limit_is_accepted() -> None:
    assert Settings(job_lease_s=JOB_TIME_LIMIT_S + 1).job_lease_s == JOB_TIME_LIMIT_S + 1


@pytest.mark.parametrize(
    "root",
    [
        "1.2.826.0.1.3680043.8.498",  # no final dot
        "1.2.826.01.3680043.",  # a leading zero
        "1.2.abc.",
        ".1.2.",
        "1..2.",
        "1." + "2." * (UID_ROOT_MAX_LENGTH // 2),  # too long for a 64-character UID
    ],
)
def test_a_uid_root_breaking_ps3_5_is_refused(root: str) -> None:
    with pytest.raises(ValidationError, match="is not a UID root"):
        Settings(uid_root=root)


@pytest.mark.parametrize("root", ["1.2.826.0.1.3680043.8.498.77.", "2.25.", "0."])
def test_valid_uid_roots_are_accepted(root: str) -> None:
    assert Settings(uid_root=root).uid_root == root


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("fresh_settings")
def test_the_environment_breaking_a_rule_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MSLESION_JOB_LEASE_S", "600")
    monkeypatch.setenv("MSLESION_TILE_SIZE", "4")
    with pytest.raises(ConfigError, match="MSLESION_TILE_SIZE: Input should be greater") as err:
        get_settings()
    assert isinstance(err.value, MSLesionError) and err.value.exit_code == 2
    assert "\n" not in str(err.value)  # one line for the CLI's `error:`
    monkeypatch.delenv("MSLESION_TILE_SIZE")
    with pytest.raises(ConfigError, match=r"MSLESION_JOB_LEASE_S, 600 s\) must exceed"):
        get_settings()
