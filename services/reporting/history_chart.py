"""A PNG chart of a patient's total lesion volume over time (Pillow only).

The chart carries no patient identity: dates and volumes only, so it can be shown or pasted
into a report without exposing who it belongs to.
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


@dataclass(frozen=True)
class ChartPoint:
    """One analysed study: its date (None if unknown) and total lesion volume in ml."""

    study_date: dt.date | None
    volume_ml: float


def render_lesion_load_chart(
    points: Sequence[ChartPoint], title: str = "Total lesion volume"
) -> bytes:
    """PNG bytes of volume (ml, y) over study date (x).

    Studies without a date are placed evenly in the given order instead of by date.
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
        draw.ellipse((x - 5, y - 5, x + 5, y + 5), fill=POINT, outline=POINT)
        draw.text((x, y - 10), f"{point.volume_ml:.1f}", fill=AXIS, font=font, anchor="ms")
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


def _draw_y_label(
    image: Image.Image, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, text: str
) -> None:
    # Pillow draws horizontal text only: draw it on a strip and rotate the strip.
    strip = Image.new("RGB", (HEIGHT - MARGIN_TOP - MARGIN_BOTTOM, 24), BACKGROUND)
    ImageDraw.Draw(strip).text((strip.width / 2, 12), text, fill=AXIS, font=font, anchor="mm")
    rotated = strip.rotate(90, expand=True)
    image.paste(rotated, (12, MARGIN_TOP))
