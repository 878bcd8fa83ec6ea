"""A PNG overview for humans: FLAIR slices with lesion outlines and a short header.

Meant for places that cannot show DICOM (e-mail, tickets, dashboards): the SEG in PACS is
the reference. Drawn with Pillow and numpy only, so it runs on a bare server.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mslesion.services.errors import InputError
from mslesion.services.imaging.axial import radiological_axial
from mslesion.services.reporting.identity import RESEARCH_DISCLAIMER
from mslesion.services.reporting.seg import LESION_DISPLAY_RGB
from mslesion.services.segmentation.postprocess import LesionReport

TILE_PX = 256
MAX_COLUMNS = 4
HEADER_PX = 44
OUTLINE_RGB = LESION_DISPLAY_RGB  # the SEG's colour in viewers; never a grey pixel
TEXT_RGB = (255, 255, 255)
WARNING_RGB = (255, 210, 0)
WINDOW_PERCENTILES = (0.5, 99.5)
"""Percentiles of brain intensities mapped to black and white: robust to a few hot voxels."""

_FONT_PX = 14
_HEAD_FRACTION = 0.1
_CROP_MARGIN_PX = 4
_OUTLINE_PX = 2


def montage_size(n_tiles: int) -> tuple[int, int]:
    """(width, height) in pixels of a montage of ``n_tiles`` slices."""
    columns = min(MAX_COLUMNS, n_tiles)
    rows = math.ceil(n_tiles / columns)
    return columns * TILE_PX, HEADER_PX + rows * TILE_PX


def montage_title(model_name: str, model_version: str, lesion_report: LesionReport) -> str:
    """Standard header line: model, lesion count and total lesion volume."""
    return (
        f"{model_name} {model_version} | {lesion_report.lesion_count} lesions | "
        f"total {lesion_report.total_volume_ml:.2f} ml"
    )


def render_montage(
    flair: np.ndarray,
    mask: np.ndarray,
    path: Path,
    *,
    n_slices: int = 12,
    title: str,
    affine: np.ndarray | None = None,
) -> Path:
    """Write a PNG of up to ``n_slices`` axial FLAIR slices with lesion outlines; return its path.

    ``flair`` and ``mask`` share one 3D grid. Without ``affine`` their axis 0 is taken as the
    axial slice axis and slices are shown as stored. With ``affine`` (voxel index -> DICOM
    patient LPS mm, e.g. :func:`services.reporting.seg.patient_affine`) both are resampled
    onto a radiological axial grid (patient's right on the image's left, anterior at the top,
    inferior slices first; :func:`services.imaging.axial.radiological_axial`), whatever the
    acquisition: tilted, sagittal, coronal, flipped or sheared.

    Slices with the most lesion voxels are chosen (spread over the lesions), plus evenly
    spaced context slices through the brain; the header shows ``title`` and the research-use
    disclaimer.

    Raises:
        InputError: when the arrays are not 3D with equal shapes, ``n_slices`` < 1, or the
            affine is not a grid (see :func:`services.imaging.geometry.axes_and_spacing`).
    """
    if flair.ndim != 3 or flair.shape != mask.shape:
        raise InputError(f"flair {flair.shape} and mask {mask.shape} must be 3D and equal")
    if n_slices < 1:
        raise InputError(f"n_slices must be >= 1, got {n_slices}")
    image = np.nan_to_num(flair.astype(np.float32, copy=False))
    lesions = mask > 0
    spacing = (1.0, 1.0)
    if affine is not None:
        view = radiological_axial(image, lesions, affine)
        image, lesions, spacing = view.image, view.mask, view.pixel_mm
    low, high = window(image)
    rows, columns = head_box(image, high)
    image, lesions = image[:, rows, columns], lesions[:, rows, columns]
    chosen = choose_slices(lesions, image > 0, n_slices)
    tiles = [_tile(image[k], lesions[k], low, high, spacing) for k in chosen]
    labels = [f"slice {k + 1}/{image.shape[0]}" for k in chosen]
    canvas = _compose(tiles, labels, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, format="PNG")
    return path


def choose_slices(lesions: np.ndarray, brain: np.ndarray, n_slices: int) -> list[int]:
    """Indices (ascending) of the slices to show along axis 0.

    About three quarters of the places go to the slices with the most lesion voxels, first
    keeping chosen slices apart so that several lesions get a place, then the rest by lesion
    voxels; the remainder show evenly spaced slices through the brain for context.
    """
    depth = lesions.shape[0]
    n = min(n_slices, depth)
    per_slice = lesions.reshape(depth, -1).sum(axis=1)
    lesion_places = n - max(1, n // 4) if n > 1 else n
    chosen = _spread_by_count(per_slice, lesion_places)
    brain_slices = np.flatnonzero(brain.reshape(depth, -1).any(axis=1))
    if brain_slices.size == 0:
        brain_slices = np.arange(depth)
    _add_context(chosen, brain_slices, n)
    return sorted(chosen)


def _spread_by_count(per_slice: np.ndarray, places: int) -> list[int]:
    """Up to ``places`` slices with lesion voxels, most first, preferring non-neighbours."""
    candidates = [int(k) for k in np.argsort(-per_slice, kind="stable") if per_slice[k] > 0]
    chosen: list[int] = []
    for gap in (2, 0):  # first pass skips neighbours of chosen slices; second fills up
        for k in candidates:
            if len(chosen) == places:
                return chosen
            if k not in chosen and all(abs(k - c) > gap for c in chosen):
                chosen.append(k)
    return chosen


def _add_context(chosen: list[int], brain_slices: np.ndarray, n: int) -> None:
    """Append evenly spaced brain slices, nearest free one to each target, up to ``n``."""
    free = [int(k) for k in brain_slices if k not in chosen]
    missing = n - len(chosen)
    if missing <= 0 or not free:
        return
    targets = np.linspace(brain_slices[0], brain_slices[-1], missing + 2)[1:-1]
    for target in targets:
        if not free:
            return
        nearest = min(free, key=lambda k: abs(k - target))
        chosen.append(nearest)
        free.remove(nearest)


def head_box(image: np.ndarray, high: float) -> tuple[slice, slice]:
    """In-plane rows and columns holding the head in any slice (plus a margin).

    The field of view is often much larger than the head; cropping it gives the anatomy
    most of the tile. Noise stays far below a tenth of the window's top.
    """
    signal = np.any(image > _HEAD_FRACTION * high, axis=0)
    if not signal.any():
        return slice(None), slice(None)
    rows, columns = np.flatnonzero(np.any(signal, axis=1)), np.flatnonzero(np.any(signal, axis=0))
    margin = _CROP_MARGIN_PX
    return (
        slice(max(0, rows[0] - margin), rows[-1] + 1 + margin),
        slice(max(0, columns[0] - margin), columns[-1] + 1 + margin),
    )


def window(image: np.ndarray) -> tuple[float, float]:
    """Display window from brain (non-zero) intensities."""
    brain = image[image > 0]
    if brain.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(brain, WINDOW_PERCENTILES)
    return float(low), float(max(high, low + 1e-6))


def _tile(
    plane: np.ndarray,
    lesions: np.ndarray,
    low: float,
    high: float,
    spacing: tuple[float, float],
) -> Image.Image:
    """One slice, windowed and fitted into a square tile, with lesion outlines drawn."""
    grey = np.clip((plane - low) / (high - low), 0.0, 1.0)
    height_mm, width_mm = plane.shape[0] * spacing[0], plane.shape[1] * spacing[1]
    scale = TILE_PX / max(height_mm, width_mm)
    size = (max(1, round(width_mm * scale)), max(1, round(height_mm * scale)))
    grey_img = Image.fromarray((grey * 255).astype(np.uint8)).resize(
        size, Image.Resampling.BILINEAR
    )
    mask_img = Image.fromarray(lesions.astype(np.uint8) * 255).resize(
        size, Image.Resampling.NEAREST
    )
    rgb = np.repeat(np.asarray(grey_img)[:, :, None], 3, axis=2)
    rgb[outline(np.asarray(mask_img) > 0)] = OUTLINE_RGB
    tile = Image.new("RGB", (TILE_PX, TILE_PX))
    tile.paste(Image.fromarray(rgb), ((TILE_PX - size[0]) // 2, (TILE_PX - size[1]) // 2))
    return tile


def outline(region: np.ndarray) -> np.ndarray:
    """A band of :data:`_OUTLINE_PX` pixels just outside ``region``: the lesion stays visible."""
    grown = region.copy()
    for _ in range(_OUTLINE_PX):
        edge = grown.copy()  # grow from the previous ring only (4-neighbours)
        grown[1:, :] |= edge[:-1, :]
        grown[:-1, :] |= edge[1:, :]
        grown[:, 1:] |= edge[:, :-1]
        grown[:, :-1] |= edge[:, 1:]
    return grown & ~region


def _compose(tiles: list[Image.Image], labels: list[str], title: str) -> Image.Image:
    """Tiles in a grid under a header with the title and the disclaimer."""
    width, height = montage_size(len(tiles))
    canvas = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=_FONT_PX)
    draw.text((6, 4), title, fill=TEXT_RGB, font=font)
    draw.text((6, 4 + _FONT_PX + 4), RESEARCH_DISCLAIMER, fill=WARNING_RGB, font=font)
    columns = min(MAX_COLUMNS, len(tiles))
    for i, (tile, label) in enumerate(zip(tiles, labels, strict=True)):
        x, y = (i % columns) * TILE_PX, HEADER_PX + (i // columns) * TILE_PX
        canvas.paste(tile, (x, y))
        draw.text((x + 4, y + 2), label, fill=TEXT_RGB, font=font)
    return canvas
