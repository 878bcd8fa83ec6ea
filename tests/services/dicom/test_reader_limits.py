"""Series too large to be a brain MR series are refused before decoding."""

from __future__ import annotations

from pathlib import Path

import pytest

from mslesion.services.dicom import geometry
from mslesion.services.dicom.errors import DicomInputError
from mslesion.services.dicom.reader import load_series_volume, read_study
from tests.corpus.series import write_large_series


def test_oversized_series_is_refused_with_its_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_large_series(tmp_path / "series")
    [series] = read_study(tmp_path / "series").series
    # The real limit is 268 M voxels; the 5,000-slice corpus series (320 k) stands in for one
    # over it by lowering the limit, so the test stays small.
    monkeypatch.setattr(geometry, "MAX_SERIES_VOXELS", 100_000)
    with pytest.raises(DicomInputError, match=r"5000 frames of 8x8 make 320,000 voxels"):
        load_series_volume(series)
