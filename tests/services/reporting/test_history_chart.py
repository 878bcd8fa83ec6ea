"""The lesion-load chart: a PNG of the right size that draws each study."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pytest
from PIL import Image

from mslesion.services.errors import InputError
from mslesion.services.reporting.history_chart import (
    HEIGHT,
    WIDTH,
    ChartPoint,
    render_lesion_load_chart,
)


def test_chart_is_a_png_with_a_marker_per_study() -> None:
    points = [
        ChartPoint(dt.date(2012, 3, 1), 4.0),
        ChartPoint(dt.date(2013, 3, 1), 5.5),
        ChartPoint(dt.date(2016, 3, 1), 2.0),
    ]
    image = Image.open(io.BytesIO(render_lesion_load_chart(points)))
    assert image.format == "PNG" and image.size == (WIDTH, HEIGHT)
    pixels = np.asarray(image.convert("RGB")).astype(int)
    marker = np.abs(pixels - [0xC0, 0x39, 0x2B]).sum(axis=2) < 30
    columns = np.flatnonzero(marker.any(axis=0))
    groups = np.split(columns, np.flatnonzero(np.diff(columns) > 1) + 1)
    assert len(groups) == 3  # one marker per study, at distinct dates


def test_unknown_dates_and_single_study() -> None:
    assert render_lesion_load_chart([ChartPoint(None, 0.0)])[:8] == b"\x89PNG\r\n\x1a\n"
    two = [ChartPoint(None, 1.0), ChartPoint(dt.date(2020, 1, 1), 1.5)]
    assert render_lesion_load_chart(two)[:4] == b"\x89PNG"
    with pytest.raises(InputError):
        render_lesion_load_chart([])
