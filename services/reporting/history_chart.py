"""A PNG chart of a patient's total lesion volume over time (Pillow only).

The chart carries no patient identity: dates and volumes only, so it can be shown or pasted
into a report without exposing who it belongs to. Visits with MRI activity (new or enlarging
lesions since the visit before) can be marked in their own colour, with a legend.
"""

from __future__ import annotations

import datetime as dt
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from mslesion.services.errors import InputError

WIDTH, HEIGHT = 800, 480
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 90, 30, 50, 80
BACKGROUND, AXIS, GRID, LINE, POINT = "white", "black", "#dddddd", "#1f5fa8", "#c0392b"
ACTIVE_POINT = "#ff8c00"
"""Marker of a visit with MRI activity: orange, far from the red of the other visits."""
ACTIVE_LABEL = "new or enlarging lesions"
_MARKER_PX, _ACTIVE_MARKER_PX = 5, 7  # active visits are also larger: colour is not the only cue


@dataclass(frozen=True)
class ChartPoint:
    """One analysed study: its date (None if unknown) and total lesion volume in ml.

    ``active`` marks a visit with MRI activity (a new or enlarging lesion since the prior).
    """

    study_date: dt.date | None
    volume_ml: float
    active: bool = False


def render_lesion_load_chart(
    points: Sequence[ChartPoint], title: str = "Total lesion volume"
) -> bytes:
    """PNG bytes of volume (ml, y) over study date (x).

    Studies without a date are placed evenly in the given order instead of by date. Active
    visits (:attr:`ChartPoint.active`) get a larger orange marker and a legend explains it;
    without any, the chart is drawn exactly as before.
    """
    if not points:
        raise InputError("a lesion-load chart needs at least one analysed study")
    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=14)
    plot = (MARGIN_LEFT, MARGIN_TOP, WIDTH - MARGIN_RIGHT, HEIGHT - MARGIN_BOTTOM)
    xs = _x_positions(points, plot)
    top = _nice_ceiling(max(p.volume_ml for p in points))
    ys = [plot[3] - (p.volume_ml / top) * (plot[3] - plot[1]) for p in points]

    _draw_y_axis(draw, font, plot, top)
    _draw_x_axis(draw, font, plot, points, xs)
    draw.text((WIDTH / 2, 20), title, fill=AXIS, font=font, anchor="mm")
    if len(points) > 1:
        draw.line(list(zip(xs, ys, strict=True)), fill=LINE, width=3)
    for x, y, point in zip(xs, ys, points, strict=True):
        radius, colour = (_ACTIVE_MARKER_PX, ACTIVE_POINT) if point.active else (_MARKER_PX, POINT)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour, outline=colour)
        draw.text((x, y - 10), f"{point.volume_ml:.1f}", fill=AXIS, font=font, anchor="ms")
    if any(p.active for p in points):
        _draw_active_legend(draw, font)
    _draw_y_label(image, font, "Total lesion volume (ml)")
    draw.text((WIDTH / 2, HEIGHT - 20), "Study date", fill=AXIS, font=font, anchor="mm")

    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _x_positions(points: Sequence[ChartPoint], plot: tuple[int, int, int, int]) -> list[float]:
    left, right = plot[0] + 30, plot[2] - 30
    dates = [p.study_date for p in points]
    if len(points) == 1:
        return [(left + right) / 2]
    known = [d for d in dates if d is not None]
    if len(known) == len(dates) and max(known) > min(known):
        first, span = min(known), (max(known) - min(known)).days
        return [left + (d - first).days / span * (right - left) for d in known]
    return [left + i * (right - left) / (len(points) - 1) for i in range(len(points))]


def _nice_ceiling(value: float) -> float:
    """A round upper bound of the y axis (1, 2 or 5 times a power of ten) above ``value``."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value * 1.1 <= step * power:
            return float(step * power)
    return float(20 * power)


def _draw_y_axis(
    draw: ImageDraw.ImageDraw,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    plot: tuple[int, int, int, int],
    top: float,
) -> None:
    left, upper, right, lower = plot
    for i in range(6):
        value = top * i / 5
        y = lower - (lower - upper) * i / 5
        draw.line((left, y, right, y), fill=GRID)
        draw.text((left - 8, y), f"{value:g}", fill=AXIS, font=font, anchor="rm")
    draw.line((left, upper, left, lower), fill=AXIS, width=2)


def _draw_x_axis(
    draw: ImageDraw.ImageDraw,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    plot: tuple[int, int, int, int],
    points: Sequence[ChartPoint],
    xs: Sequence[float],
) -> None:
    left, _, right, lower = plot
    draw.line((left, lower, right, lower), fill=AXIS, width=2)
    for x, point in zip(xs, points, strict=True):
        draw.line((x, lower, x, lower + 6), fill=AXIS, width=2)
        label = point.study_date.isoformat() if point.study_date else "date unknown"
        draw.text((x, lower + 10), label, fill=AXIS, font=font, anchor="mt")


def _draw_active_legend(
    draw: ImageDraw.ImageDraw, font: ImageFont.FreeTypeFont | ImageFont.ImageFont
) -> None:
    """Marker and label of active visits, top right above the plot."""
    right, y = WIDTH - MARGIN_RIGHT, MARGIN_TOP - 18
    draw.text((right, y), ACTIVE_LABEL, fill=AXIS, font=font, anchor="rm")
    x = right - draw.textlength(ACTIVE_LABEL, font=font) - 12
    r = _ACTIVE_MARKER_PX
    draw.ellipse((x - r, y - r, x + r, y + r), fill=ACTIVE_POINT, outline=ACTIVE_POINT)


def _draw_y_label(
    image: Image.Image, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, text: str
) -> None:
    # Pillow draws horizontal text only: draw it on a strip and rotate the strip.
    strip = Image.new("RGB", (HEIGHT - MARGIN_TOP - MARGIN_BOTTOM, 24), BACKGROUND)
    ImageDraw.Draw(strip).text((strip.width / 2, 12), text, fill=AXIS, font=font, anchor="mm")
    rotated = strip.rotate(90, expand=True)
    image.paste(rotated, (12, MARGIN_TOP))
