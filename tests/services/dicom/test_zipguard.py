"""The zip guard shared by the reader and the upload route: limits from the settings."""

from __future__ import annotations

import zipfile

import pytest

from mslesion.services.config import Settings
from mslesion.services.dicom.zipguard import ZipLimits, ZipRefusedError, check_archive


def _infos(*names: str, size: int = 0) -> list[zipfile.ZipInfo]:
    infos = [zipfile.ZipInfo(name) for name in names]
    for info in infos:
        info.file_size = size
    return infos


def test_default_limits_are_the_settings_defaults() -> None:
    assert ZipLimits() == ZipLimits.from_settings(Settings())


def test_limits_follow_the_settings() -> None:
    settings = Settings(max_zip_members=3, max_zip_expanded_bytes=20, max_zip_member_bytes=10)
    assert ZipLimits.from_settings(settings) == ZipLimits(3, 20, 10)


@pytest.mark.parametrize("name", ["../a", "A/../../b", "/etc/x", "C:\\x", "C:x", "..\\a"])
def test_traversal_names_refuse_the_archive(name: str) -> None:
    with pytest.raises(ZipRefusedError, match="path traversal") as caught:
        check_archive(_infos("ok.dcm", name), ZipLimits())
    assert repr(name) in str(caught.value)
    assert not caught.value.oversized


@pytest.mark.parametrize("name", ["EXPORT/IM0001.dcm", "a..b/c", "DICOM/"])
def test_ordinary_names_pass(name: str) -> None:
    check_archive(_infos(name), ZipLimits())


def test_folder_entries_count_as_members() -> None:
    with pytest.raises(ZipRefusedError, match="3 members, more than the limit of 2") as caught:
        check_archive(_infos("A/", "A/1.dcm", "A/2.dcm"), ZipLimits(max_members=2))
    assert caught.value.oversized


def test_declared_sizes_over_the_limits_are_a_possible_bomb() -> None:
    limits = ZipLimits(max_members=10, max_total_bytes=25, max_member_bytes=10)
    check_archive(_infos("a", "b", size=10), limits)
    with pytest.raises(ZipRefusedError, match="possible zip bomb") as caught:
        check_archive(_infos("a", "b", "c", size=10), limits)
    assert caught.value.oversized
