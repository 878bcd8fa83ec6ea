"""Follow-up visual report: montage PNG, secondary capture pages, active visits on the chart."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from mslesion.services.errors import InputError
from mslesion.services.followup.model import ChangeCategory
from mslesion.services.reporting.followup_montage import (
    HEADER_PX,
    MONTAGE_RGB,
    PAGE_WIDTH,
    PRIOR_RGB,
    render_followup_montage,
    summary_page,
)
from mslesion.services.reporting.followup_sc import build_followup_sc
from mslesion.services.reporting.history_chart import (
    ACTIVE_POINT,
    POINT,
    ChartPoint,
    render_lesion_load_chart,
)
from mslesion.services.reporting.montage import TILE_PX, WARNING_RGB
from tests.services.reporting.followup_fixtures import FollowUpCase, make_case


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> FollowUpCase:
    return make_case(tmp_path_factory.mktemp("followup-sc"))


@pytest.fixture(scope="module")
def sc_paths(case: FollowUpCase, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("followup-sc-out")
    paths = []
    for n, page in enumerate(
        build_followup_sc(case.current_sources, case.analysis, case.history, case.settings),
        start=1,
    ):
        path = folder / f"sc_{n}.dcm"
        pydicom.dcmwrite(path, page, enforce_file_format=True)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def montage(case: FollowUpCase, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    path = render_followup_montage(case.analysis, tmp_path_factory.mktemp("png") / "f.png")
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def test_sc_pages_pass_dciodvfy(sc_paths: list[Path], dciodvfy: Callable[[Path], str]) -> None:
    assert len(sc_paths) == 2
    for path in sc_paths:
        print(dciodvfy(path))


def test_sc_pages_belong_to_the_current_study(sc_paths: list[Path], case: FollowUpCase) -> None:
    source = case.current_sources[0]
    pages = [pydicom.dcmread(p) for p in sc_paths]
    assert {p.StudyInstanceUID for p in pages} == {source.StudyInstanceUID}
    assert {p.PatientID for p in pages} == {source.PatientID}
    assert len({p.SeriesInstanceUID for p in pages}) == 1
    assert pages[0].SeriesInstanceUID != source.SeriesInstanceUID
    assert [p.InstanceNumber for p in pages] == [1, 2]
    assert len({p.SOPInstanceUID for p in pages}) == 2
    for page in pages:
        assert page.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
        assert page.SeriesNumber == 9005
        assert page.PhotometricInterpretation == "RGB" and page.SamplesPerPixel == 3
        assert "research use" in page.SeriesDescription
        assert page.Columns == PAGE_WIDTH
    assert list(pages[0].PatientOrientation) == ["L", "P"]  # radiological axial tiles
    assert not pages[1].PatientOrientation  # a chart: no orientation claimed


def test_sc_page_1_is_the_montage(sc_paths: list[Path], montage: np.ndarray) -> None:
    page = pydicom.dcmread(sc_paths[0]).pixel_array
    assert page.shape == montage.shape
    # Same drawing; only the noise-free overlays need to agree exactly.
    for colour in (MONTAGE_RGB[ChangeCategory.NEW], PRIOR_RGB):
        assert _count(page, colour) == _count(montage, colour) > 0


def test_montage_shows_categories_now_and_lesions_at_the_prior(montage: np.ndarray) -> None:
    tiles = montage[HEADER_PX:]
    now = np.concatenate([tiles[:, x : x + TILE_PX] for x in (0, 2 * TILE_PX)], axis=1)
    prior = np.concatenate([tiles[:, x : x + TILE_PX] for x in (TILE_PX, 3 * TILE_PX)], axis=1)
    for category in (ChangeCategory.NEW, ChangeCategory.ENLARGING):
        assert _count(now, MONTAGE_RGB[category]) > 0, category
        assert _count(prior, MONTAGE_RGB[category]) == 0, category
    assert _count(prior, PRIOR_RGB) > 0
    assert _count(now, PRIOR_RGB) == 0
    assert _count(montage[:HEADER_PX], WARNING_RGB) > 0  # the disclaimer
    assert len(set(MONTAGE_RGB.values())) == len(MONTAGE_RGB)


def test_montage_refuses_maps_off_the_current_grid(case: FollowUpCase, tmp_path: Path) -> None:
    analysis = case.analysis
    shifted = type(analysis)(
        report=analysis.report,
        current_flair=analysis.current_flair,
        prior_flair=analysis.prior_flair,
        category_map=analysis.category_map[1:],
        prior_mask=analysis.prior_mask,
        label_map=analysis.label_map,
    )
    with pytest.raises(InputError, match="category_map"):
        render_followup_montage(shifted, tmp_path / "x.png")


def test_summary_page_without_history_shows_the_two_studies(case: FollowUpCase) -> None:
    page = np.asarray(summary_page(case.analysis.report))
    assert page.shape[1] == PAGE_WIDTH
    assert _count(page, _hex(ACTIVE_POINT)) > 0  # the current visit is active
    assert _count(page, WARNING_RGB) > 0


def test_chart_marks_active_visits() -> None:
    dates = [dt.date(2022, 1, 1), dt.date(2023, 1, 1), dt.date(2024, 1, 1)]
    quiet = _png([ChartPoint(d, v) for d, v in zip(dates, (1.0, 2.0, 3.0), strict=True)])
    active = _png(
        [
            ChartPoint(d, v, active=(i == 1))
            for i, (d, v) in enumerate(zip(dates, (1.0, 2.0, 3.0), strict=True))
        ]
    )
    assert _count(quiet, _hex(ACTIVE_POINT)) == 0
    assert _markers(quiet, _hex(POINT)) == 3
    assert _markers(active, _hex(POINT)) == 2
    assert _markers(active, _hex(ACTIVE_POINT)) == 2  # the active visit and the legend's swatch


def _png(points: list[ChartPoint]) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(render_lesion_load_chart(points))).convert("RGB"))


def _hex(colour: str) -> tuple[int, int, int]:
    value = int(colour.lstrip("#"), 16)
    return (value >> 16, (value >> 8) & 0xFF, value & 0xFF)


def _count(pixels: np.ndarray, rgb: tuple[int, int, int]) -> int:
    return int(np.all(pixels == rgb, axis=-1).sum())


def _markers(pixels: np.ndarray, rgb: tuple[int, int, int]) -> int:
    """Separate blobs of (nearly) this colour along x."""
    near = np.abs(pixels.astype(int) - rgb).sum(axis=2) < 30
    columns = np.flatnonzero(near.any(axis=0))
    if columns.size == 0:
        return 0
    return len(np.split(columns, np.flatnonzero(np.diff(columns) > 1) + 1))
