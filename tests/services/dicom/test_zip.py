"""Studies sent as zip archives: same result as a folder; traversal and zip bombs refused."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from mslesion.services.dicom.errors import DicomInputError
from mslesion.services.dicom.reader import ZipLimits, load_series_volume, read_study
from mslesion.services.dicom.selection import select_series


def _zip_folder(folder: Path, archive: Path, prefix: str = "EXPORT/") -> Path:
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as out:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                out.write(path, prefix + path.relative_to(folder).as_posix())
        out.writestr(prefix + "README.TXT", "burned by PACS export\n")
    return archive


def test_zip_gives_the_same_study_as_the_folder(study_dir: Path, tmp_path: Path) -> None:
    archive = _zip_folder(study_dir, tmp_path / "study.zip")
    from_folder, from_zip = read_study(study_dir), read_study(archive)
    assert from_zip.study_uid == from_folder.study_uid
    assert [s.series_uid for s in from_zip.series] == [s.series_uid for s in from_folder.series]
    assert from_zip.skipped == ["EXPORT/README.TXT: not a DICOM file (no DICM prefix)"]
    selection = select_series(from_zip)
    flair = selection.load("flair")
    assert all(f.source.path == archive and f.source.member for f in flair.frames)
    expected = load_series_volume(from_folder.find(selection.series["flair"].series_uid))
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(flair.image), sitk.GetArrayFromImage(expected.image)
    )
    assert flair.image.GetOrigin() == expected.image.GetOrigin()


@pytest.mark.parametrize("member", ["../evil.dcm", "EXPORT/../../evil.dcm", "/etc/evil.dcm",
                                    "C:/evil.dcm", "..\\evil.dcm"])  # fmt: skip
def test_path_traversal_member_refuses_the_archive(
    flair_dir: Path, tmp_path: Path, member: str
) -> None:
    archive = _zip_folder(flair_dir, tmp_path / "study.zip")
    with zipfile.ZipFile(archive, "a") as out:
        out.writestr(member, b"x")
    with pytest.raises(DicomInputError, match="path traversal") as caught:
        read_study(archive)
    assert repr(member) in str(caught.value)


def test_zip_bomb_is_refused_before_decompression(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as out:
        out.writestr("a.dcm", bytes(8 << 20))  # 8 MiB of zeros compress to a few KiB
    assert archive.stat().st_size < 64 << 10
    limits = ZipLimits(max_total_bytes=4 << 20, max_member_bytes=4 << 20)
    with pytest.raises(DicomInputError, match="possible zip bomb"):
        read_study(archive, zip_limits=limits)


def test_too_many_members_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for i in range(20):
            out.writestr(f"f{i}.txt", b"")
    with pytest.raises(DicomInputError, match="20 members, more than the limit of 10"):
        read_study(archive, zip_limits=ZipLimits(max_members=10))


def test_neither_folder_nor_zip(tmp_path: Path) -> None:
    path = tmp_path / "study.zip"
    path.write_bytes(b"not a zip at all")
    with pytest.raises(DicomInputError, match="neither a folder nor a zip archive"):
        read_study(path)
    with pytest.raises(DicomInputError, match="no such file or folder"):
        read_study(tmp_path / "absent")


def test_encrypted_members_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "locked.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("IM00001.dcm", b"\0" * 200)
    # zipfile cannot encrypt: set the "encrypted" flag bit as a password-protected export has
    # it, in the local header (flags at byte 6) and the central directory (byte 8).
    raw = bytearray(archive.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        raw[raw.index(signature) + offset] |= 0x1
    archive.write_bytes(bytes(raw))
    with pytest.raises(DicomInputError, match="encrypted zip member"):
        read_study(archive)
