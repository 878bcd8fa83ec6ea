"""The follow-up reading for humans: a montage of now versus prior, and a summary page.

Page 1 (:func:`montage_page`, also written as ``followup.png``): radiological axial slices
of the current FLAIR with every current lesion outlined in its change category's colour
(new and enlarging in the follow-up SEG's bright colours, stable and shrinking muted), each
beside the prior FLAIR at the same position with the prior's lesions outlined. The prior is
already registered and resampled onto the current grid, so one slice index serves both.

Page 2 (:func:`summary_page`): counts per change category, new and enlarging lesions per
McDonald location, MRI activity yes/no, the two study dates, the research disclaimer and
the patient's lesion-load timeline with active visits marked.

Drawn with Pillow and numpy only, and with the single-study montage's windowing, cropping,
outlines and slice choice (:mod:`services.reporting.montage`), so both look alike. No
patient identity is drawn: dates and numbers only.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image, ImageDraw, ImageFont

from mslesion.services.errors import InputError
from mslesion.services.followup.analysis import CATEGORY_VALUE, FollowUpAnalysis
from mslesion.services.followup.model import (
    ACTIVE_CATEGORIES,
    ChangeCategory,
    FollowUpReport,
    Location,
)
from mslesion.services.imaging.axial import axial_grid
from mslesion.services.imaging.geometry import affine_of, image_on
from mslesion.services.reporting.followup_seg import CATEGORY_RGB
from mslesion.services.reporting.history_chart import ChartPoint, render_lesion_load_chart
from mslesion.services.reporting.identity import RESEARCH_DISCLAIMER
from mslesion.services.reporting.montage import (
    TEXT_RGB,
    TILE_PX,
    WARNING_RGB,
    choose_slices,
    head_box,
    outline,
    window,
)

PAIRS_PER_ROW = 2  # four tiles across, as wide as the single-study montage
HEADER_PX = 66
PAGE_WIDTH = 2 * PAIRS_PER_ROW * TILE_PX
MONTAGE_RGB: dict[ChangeCategory, tuple[int, int, int]] = {
    ChangeCategory.NEW: CATEGORY_RGB[ChangeCategory.NEW],
    ChangeCategory.ENLARGING: CATEGORY_RGB[ChangeCategory.ENLARGING],
    ChangeCategory.STABLE: (95, 120, 165),  # muted blue: present but not the news
    ChangeCategory.SHRINKING: (90, 150, 120),  # muted green
}
"""Outline colour of each current category; none is grey, so none hides in the FLAIR."""
PRIOR_RGB = (200, 120, 255)
"""Outline of the prior's lesions on the prior tiles (violet: no category colour)."""
ACTIVE_RGB = (255, 140, 0)
DRAW_ORDER = (
    ChangeCategory.STABLE,
    ChangeCategory.SHRINKING,
    ChangeCategory.ENLARGING,
    ChangeCategory.NEW,
)
"""Muted categories first, so where outlines meet the active ones stay on top."""

_FONT_PX = 14
_LINE_PX = _FONT_PX + 8
_VALUE_X = 420  # right edge of the number column on page 2
_LOCATION_NAMES = {
    Location.PERIVENTRICULAR: "periventricular",
    Location.JUXTACORTICAL: "juxtacortical / cortical",
    Location.INFRATENTORIAL: "infratentorial",
    Location.DEEP_WHITE_MATTER: "deep white matter",
}


@dataclass(frozen=True)
class _AxialViews:
    """Both FLAIRs and both lesion maps on one radiological axial grid."""

    current: np.ndarray  # float32 (slice, row, column)
    prior: np.ndarray
    categories: np.ndarray  # uint8 CATEGORY_VALUE
    prior_lesions: np.ndarray  # bool
    pixel_mm: tuple[float, float]


def render_followup_montage(analysis: FollowUpAnalysis, path: Path, *, n_slices: int = 8) -> Path:
    """Write page 1 (now versus prior) as a PNG; return its path.

    Raises:
        InputError: when the maps and images of ``analysis`` are not on one grid.
    """
    page = montage_page(analysis, n_slices=n_slices)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.save(path, format="PNG")
    return path


def followup_pages(
    analysis: FollowUpAnalysis, history: Sequence[ChartPoint] = (), *, n_slices: int = 8
) -> list[Image.Image]:
    """Both pages of the visual report, RGB: the montage and the summary with the timeline."""
    return [montage_page(analysis, n_slices=n_slices), summary_page(analysis.report, history)]


def montage_page(analysis: FollowUpAnalysis, *, n_slices: int = 8) -> Image.Image:
    """Page 1: up to ``n_slices`` axial slices, each now (left) and at the prior (right).

    Slices with new or enlarging lesions are chosen first (any lesion, now or before, when
    there is no activity), plus evenly spaced context slices.

    Raises:
        InputError: when the maps and images of ``analysis`` are not on one grid, or
            ``n_slices`` < 1.
    """
    if n_slices < 1:
        raise InputError(f"n_slices must be >= 1, got {n_slices}")
    views = _axial_views(analysis)
    low, high = window(views.current)
    prior_low, prior_high = window(views.prior)  # the prior may come from another scanner
    rows, columns = head_box(views.current, high)
    current, prior = views.current[:, rows, columns], views.prior[:, rows, columns]
    categories = views.categories[:, rows, columns]
    prior_lesions = views.prior_lesions[:, rows, columns]
    active = np.isin(categories, [CATEGORY_VALUE[c] for c in ACTIVE_CATEGORIES])
    wanted = active if active.any() else (categories > 0) | prior_lesions
    chosen = choose_slices(wanted, current > 0, n_slices)
    prior_label = f"prior {_date_text(analysis.report.prior_study_date)}"
    tiles: list[tuple[Image.Image, str]] = []
    for k in chosen:
        overlays = [(categories[k] == CATEGORY_VALUE[c], MONTAGE_RGB[c]) for c in DRAW_ORDER]
        tiles.append(
            (_tile(current[k], overlays, low, high, views.pixel_mm), f"now {k + 1}/{len(current)}")
        )
        tiles.append(
            (
                _tile(
                    prior[k], [(prior_lesions[k], PRIOR_RGB)], prior_low, prior_high, views.pixel_mm
                ),
                prior_label,
            )
        )
    return _compose(tiles, analysis.report)


def _axial_views(analysis: FollowUpAnalysis) -> _AxialViews:
    """Resample both FLAIRs and both maps onto the current FLAIR's radiological axial grid."""
    shape = tuple(reversed(analysis.current_flair.GetSize()))
    named = {
        "category_map": analysis.category_map.shape,
        "prior_mask": analysis.prior_mask.shape,
        "prior_flair": tuple(reversed(analysis.prior_flair.GetSize())),
    }
    for name, other in named.items():
        if other != shape:
            raise InputError(
                f"{name} has shape {other} but the current FLAIR is {shape} (frames, rows, "
                "columns): every map of a follow-up analysis lies on the current grid"
            )
    affine = affine_of(analysis.current_flair)
    grid = axial_grid(affine, (int(shape[0]), int(shape[1]), int(shape[2])))
    current = _resample(analysis.current_flair, grid, sitk.sitkLinear, sitk.sitkFloat32)
    # The prior lies on the current grid already: its own header may differ by rounding only.
    prior_image = image_on(sitk.GetArrayFromImage(analysis.prior_flair), affine)
    prior = _resample(prior_image, grid, sitk.sitkLinear, sitk.sitkFloat32)
    categories = _resample(
        image_on(analysis.category_map.astype(np.uint8), affine),
        grid,
        sitk.sitkNearestNeighbor,
        sitk.sitkUInt8,
    )
    prior_lesions = _resample(
        image_on((analysis.prior_mask > 0).astype(np.uint8), affine),
        grid,
        sitk.sitkNearestNeighbor,
        sitk.sitkUInt8,
    )
    spacing = grid.GetSpacing()
    return _AxialViews(
        current=np.nan_to_num(current),
        prior=np.nan_to_num(prior),
        categories=categories,
        prior_lesions=prior_lesions > 0,
        pixel_mm=(float(spacing[1]), float(spacing[0])),
    )


def _resample(image: sitk.Image, grid: sitk.Image, interpolator: int, pixel: int) -> np.ndarray:
    """``image`` on ``grid`` (points outside the acquisition are 0), as an array."""
    resampled = sitk.Resample(image, grid, sitk.Transform(), interpolator, 0.0, pixel)
    return sitk.GetArrayFromImage(resampled)


def _tile(
    plane: np.ndarray,
    overlays: Sequence[tuple[np.ndarray, tuple[int, int, int]]],
    low: float,
    high: float,
    spacing: tuple[float, float],
) -> Image.Image:
    """One slice, windowed and fitted into a square tile, with each overlay outlined."""
    grey = np.clip((plane - low) / (high - low), 0.0, 1.0)
    height_mm, width_mm = plane.shape[0] * spacing[0], plane.shape[1] * spacing[1]
    scale = TILE_PX / max(height_mm, width_mm)
    size = (max(1, round(width_mm * scale)), max(1, round(height_mm * scale)))
    grey_img = Image.fromarray((grey * 255).astype(np.uint8)).resize(
        size, Image.Resampling.BILINEAR
    )
    rgb = np.repeat(np.asarray(grey_img)[:, :, None], 3, axis=2)
    for region, colour in overlays:
        if region.any():
            scaled = Image.fromarray(region.astype(np.uint8) * 255).resize(
                size, Image.Resampling.NEAREST
            )
            rgb[outline(np.asarray(scaled) > 0)] = colour
    tile = Image.new("RGB", (TILE_PX, TILE_PX))
    tile.paste(Image.fromarray(rgb), ((TILE_PX - size[0]) // 2, (TILE_PX - size[1]) // 2))
    return tile


def _compose(tiles: Sequence[tuple[Image.Image, str]], report: FollowUpReport) -> Image.Image:
    """Tile pairs in a grid under a header: counts and activity, legend, disclaimer."""
    columns = 2 * PAIRS_PER_ROW
    rows = max(1, -(-len(tiles) // columns))
    canvas = Image.new("RGB", (PAGE_WIDTH, HEADER_PX + rows * TILE_PX))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=_FONT_PX)
    draw.text((6, 4), _headline(report), fill=TEXT_RGB, font=font)
    _legend(draw, font, (6, 4 + _LINE_PX))
    draw.text((6, 4 + 2 * _LINE_PX), RESEARCH_DISCLAIMER, fill=WARNING_RGB, font=font)
    for i, (tile, label) in enumerate(tiles):
        x, y = (i % columns) * TILE_PX, HEADER_PX + (i // columns) * TILE_PX
        canvas.paste(tile, (x, y))
        draw.text((x + 4, y + 2), label, fill=TEXT_RGB, font=font)
    for pair in range(1, PAIRS_PER_ROW):  # a rule between pairs so each reads as one
        x = pair * 2 * TILE_PX
        draw.line((x, HEADER_PX, x, canvas.height), fill=(90, 90, 90), width=2)
    return canvas


def _headline(report: FollowUpReport) -> str:
    counts = ", ".join(f"{report.counts.get(c, 0)} {c.value}" for c in ChangeCategory)
    activity = "YES" if report.activity else "no"
    return (
        f"Follow-up {_date_text(report.current_study_date)} vs prior "
        f"{_date_text(report.prior_study_date)}: {counts} | MRI activity: {activity}"
    )


def _legend(
    draw: ImageDraw.ImageDraw,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    origin: tuple[int, int],
) -> None:
    """Colour swatch and name of every outline colour, left to right."""
    x, y = origin
    entries = [(MONTAGE_RGB[c], c.value) for c in reversed(DRAW_ORDER)]
    entries.append((PRIOR_RGB, "lesion at prior (prior tiles)"))
    for colour, name in entries:
        draw.rectangle((x, y + 3, x + 12, y + 13), fill=colour)
        draw.text((x + 16, y), name, fill=TEXT_RGB, font=font)
        x += 16 + int(draw.textlength(name, font=font)) + 18


def summary_page(report: FollowUpReport, history: Sequence[ChartPoint] = ()) -> Image.Image:
    """Page 2: the numbers of the comparison and the lesion-load timeline.

    Without ``history`` the timeline shows the two compared studies from the report.
    """
    points = list(history) or _two_visits(report)
    chart = Image.open(io.BytesIO(render_lesion_load_chart(points))).convert("RGB")
    lines = _summary_lines(report)
    text_px = 12 + len(lines) * _LINE_PX + 12
    canvas = Image.new("RGB", (PAGE_WIDTH, text_px + chart.height + 24))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=_FONT_PX + 2)
    y = 12
    for line in lines:
        if line.swatch is not None:
            draw.rectangle((24, y + 3, 38, y + 15), fill=line.swatch)
        draw.text((46, y), line.text, fill=line.colour, font=font)
        if line.value:  # numbers right-aligned in one column: the font is proportional
            draw.text((_VALUE_X, y), line.value, fill=line.colour, font=font, anchor="ra")
        y += _LINE_PX
    canvas.paste(chart, ((PAGE_WIDTH - chart.width) // 2, text_px))
    return canvas


@dataclass(frozen=True)
class _Line:
    """One text line of page 2, with an optional number column and colour swatch."""

    text: str = ""
    value: str = ""
    colour: tuple[int, int, int] = TEXT_RGB
    swatch: tuple[int, int, int] | None = None


def _summary_lines(report: FollowUpReport) -> list[_Line]:
    """Text lines of page 2, top to bottom."""
    current, prior = _date_text(report.current_study_date), _date_text(report.prior_study_date)
    activity = (
        _Line("MRI activity since the prior: YES (new or enlarging lesions)", colour=ACTIVE_RGB)
        if report.activity
        else _Line("MRI activity since the prior: no new or enlarging lesion")
    )
    return [
        _Line(f"MS lesion follow-up: study of {current} compared with the prior of {prior}"),
        _Line(RESEARCH_DISCLAIMER, colour=WARNING_RGB),
        _Line(),
        activity,
        _Line(),
        _Line("Lesions by change since the prior"),
        *[
            _Line(c.value, str(report.counts.get(c, 0)), swatch=MONTAGE_RGB.get(c, PRIOR_RGB))
            for c in ChangeCategory
        ],
        _Line("total lesion volume now (ml)", f"{report.total_volume_ml:.2f}"),
        _Line("total lesion volume at the prior (ml)", f"{report.prior_total_volume_ml:.2f}"),
        _Line(),
        _Line("New or enlarging lesions by McDonald location"),
        *[
            _Line(_LOCATION_NAMES[loc], str(report.new_or_enlarging_by_location.get(loc, 0)))
            for loc in Location
        ],
        _Line(),
        _Line(
            f"Model {report.model_name} {report.model_version}; registration "
            f"{report.registration.status.value} ({report.registration.method})"
        ),
        *[_Line(f"Prior analysed by {report.prior_model}") for _ in report.notes[:1]],
    ]


def _two_visits(report: FollowUpReport) -> list[ChartPoint]:
    """The timeline of the compared studies alone, when no history is given."""
    return [
        ChartPoint(_date(report.prior_study_date), report.prior_total_volume_ml),
        ChartPoint(_date(report.current_study_date), report.total_volume_ml, report.activity),
    ]


def _date(value: str | None) -> dt.date | None:
    """A DICOM DA (YYYYMMDD) as a date; None when absent or malformed."""
    try:
        return dt.datetime.strptime(value or "", "%Y%m%d").date()
    except ValueError:
        return None


def _date_text(value: str | None) -> str:
    parsed = _date(value)
    return parsed.isoformat() if parsed else "date unknown"
