"""Slice geometry of one series: its frames, checked to stack into a regular 3D grid.

A volume's axes are the row direction, the column direction and the slice axis: the line
through the slice positions, which is the normal (row × column) unless the stack is sheared;
slices are ordered by position along the normal. The rules and tolerances are those of the
one geometry model, :mod:`mslesion.services.imaging.geometry`. Errors name the slices at
fault (which one is off the line, where a slice is missing, which share a position).

Only headers are needed: :func:`stack_problem` runs during series selection, so a series
that cannot be a volume is refused before any pixel is decoded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from mslesion.services.dicom.attributes import attribute, frame_echo_time, n_frames, number
from mslesion.services.dicom.errors import DicomInputError
from mslesion.services.dicom.sources import SourceFile
from mslesion.services.dicom.study import Series, SourceFrame
from mslesion.services.imaging.geometry import (
    GAP_ATOL_MM,
    MAX_SHEAR_DEG,
    OFF_LINE_ATOL_MM,
    SliceLine,
    fit_slice_line,
    gap_tolerance,
    straight_step,
)

# Stack tolerances live with the geometry model (services.imaging.geometry), shared with
# the SEG writer; orientation noise of 6-digit decimal strings stays far below this.
ORIENTATION_ATOL = 1e-3


@dataclass(frozen=True)
class Frame:
    """Geometry and pixel mapping of one 2D frame, before the series is stacked."""

    source: SourceFile
    header: Dataset
    index: int | None  # 0-based frame of a multi-frame instance
    position: np.ndarray
    orientation: np.ndarray
    pixel_spacing: tuple[float, float]
    shape: tuple[int, int]
    slope: float
    intercept: float
    echo_time: float | None

    def source_frame(self) -> SourceFrame:
        """The reference to this frame that outputs carry: SOP instance, class and frame."""
        return SourceFrame(
            sop_instance_uid=str(self.header.SOPInstanceUID),
            sop_class_uid=str(self.header.SOPClassUID),
            frame_number=None if self.index is None else self.index + 1,
            source=self.source,
        )

    def label(self) -> str:
        """``instance #N`` (with ``frame M`` for a multi-frame instance), for messages."""
        instance = self.header.get("InstanceNumber", "?")
        frame = f" frame {self.index + 1}" if self.index is not None else ""
        return f"instance #{instance}{frame}"


def _required_vector(
    series: Series,
    header: Dataset,
    frame: int | None,
    keyword: str,
    length: int,
    source: SourceFile,
) -> np.ndarray:
    value = attribute(header, keyword, frame)
    try:
        vector = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        vector = np.empty(0)
    if vector.shape != (length,) or not np.isfinite(vector).all():
        where = f" frame {frame + 1}" if frame is not None else ""
        raise series.error(f"{source}{where}: missing or invalid {keyword} ({value!r})")
    return vector


def _make_frame(series: Series, source: SourceFile, header: Dataset, index: int | None) -> Frame:
    frame = index if index is not None else 0
    spacing = _required_vector(series, header, index, "PixelSpacing", 2, source)
    slope = number(attribute(header, "RescaleSlope", frame))
    intercept = number(attribute(header, "RescaleIntercept", frame))
    return Frame(
        source=source,
        header=header,
        index=index,
        position=_required_vector(series, header, index, "ImagePositionPatient", 3, source),
        orientation=_required_vector(series, header, index, "ImageOrientationPatient", 6, source),
        pixel_spacing=(float(spacing[0]), float(spacing[1])),
        shape=(int(header.get("Rows", 0)), int(header.get("Columns", 0))),
        slope=1.0 if slope is None else slope,
        intercept=0.0 if intercept is None else intercept,
        echo_time=frame_echo_time(header, frame),
    )


# A brain MR series larger than this is not one (1 GiB as float32; 512 x 512 x 1024): refuse
# it before decoding rather than let a worker run out of memory.
MAX_SERIES_VOXELS = 512 * 512 * 1024


def check_size(series: Series, frames: list[Frame]) -> None:
    """Refuse a series over :data:`MAX_SERIES_VOXELS`."""
    voxels = sum(f.shape[0] * f.shape[1] for f in frames)
    if voxels > MAX_SERIES_VOXELS:
        raise series.error(
            f"{len(frames)} frames of {frames[0].shape[0]}x{frames[0].shape[1]} make "
            f"{voxels:,} voxels, more than the limit of {MAX_SERIES_VOXELS:,} for one series"
        )


def series_frames(series: Series, echo_time: float | None) -> list[Frame]:
    """Every 2D frame of the series (of one echo, if ``echo_time`` is given), unordered."""
    frames: list[Frame] = []
    for source, header in zip(series.files, series.headers, strict=True):
        if "PerFrameFunctionalGroupsSequence" in header:
            frames.extend(_make_frame(series, source, header, i) for i in range(n_frames(header)))
        else:
            frames.append(_make_frame(series, source, header, None))
    if echo_time is not None:
        frames = [
            f for f in frames if f.echo_time is not None and abs(f.echo_time - echo_time) < 0.01
        ]
        if not frames:
            raise series.error(
                f"no image with echo time {echo_time} ms (series has {series.echo_times})"
            )
    return frames


def stack_problem(series: Series, echo_time: float | None = None) -> str | None:
    """Why the frames of ``series`` (of one echo) cannot stack into one volume, or None.

    Headers only, so it is cheap: series selection asks it of every candidate, and a study
    whose FLAIR cannot be a volume is refused before anything is decoded or computed.
    """
    try:
        frames = series_frames(series, echo_time)
        check_size(series, frames)
        stack_frames(series, frames)
    except DicomInputError as exc:
        return exc.problem
    return None


@dataclass(frozen=True)
class Stack:
    """How frames stack into a volume: their z order and the volume's LPS geometry."""

    order: list[int]
    origin: np.ndarray
    direction: np.ndarray  # 3×3 unit columns: row direction, column direction, slice axis
    spacing: tuple[float, float, float]


def _common_value(series: Series, frames: Sequence[Frame], what: str, key: Any) -> Any:
    values = Counter(key(f) for f in frames)
    if len(values) > 1:
        listing = ", ".join(f"{v} ({n} slices)" for v, n in values.most_common(5))
        raise series.error(f"slices differ in {what}: {listing}")
    return next(iter(values))


def _orientation(series: Series, frames: Sequence[Frame]) -> np.ndarray:
    """The series' common row/column/normal directions, checked orthogonal."""
    reference = frames[0].orientation
    for frame in frames[1:]:
        if not np.allclose(frame.orientation, reference, atol=ORIENTATION_ATOL):
            raise series.error(
                "slices have different ImageOrientationPatient "
                f"({_fmt(reference)} vs {_fmt(frame.orientation)} in {frame.label()}): "
                "a volume needs one orientation for all slices"
            )
    row, col = reference[:3], reference[3:]
    if (
        abs(np.linalg.norm(row) - 1) > 0.01
        or abs(np.linalg.norm(col) - 1) > 0.01
        or abs(float(row @ col)) > 0.01
    ):
        raise series.error(
            f"ImageOrientationPatient {_fmt(reference)} is not two unit, orthogonal vectors"
        )
    # Re-orthonormalise: 6-digit decimal strings leave ~1e-6 errors that ITK would carry.
    row = row / np.linalg.norm(row)
    col = col - (col @ row) * row
    col = col / np.linalg.norm(col)
    return np.column_stack([row, col, np.cross(row, col)])


def _pixel_spacing(series: Series, frames: Sequence[Frame]) -> tuple[float, float]:
    reference = frames[0].pixel_spacing
    for frame in frames[1:]:
        if not np.allclose(frame.pixel_spacing, reference, rtol=1e-4, atol=1e-4):
            raise series.error(
                f"slices differ in PixelSpacing: {_fmt(reference)} vs "
                f"{_fmt(frame.pixel_spacing)} in {frame.label()}"
            )
    if min(reference) <= 0:
        raise series.error(f"PixelSpacing {_fmt(reference)} is not positive")
    return reference


def _fmt(values: Iterable[float]) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


def stack_frames(series: Series, frames: Sequence[Frame]) -> Stack:
    """Order ``frames`` along their normal after checking they form a regular 3D grid.

    The slice axis is the line through the slice positions: the normal for every MR
    acquisition, leaning within the slice plane for a sheared stack (gantry tilt), which
    is accepted up to :data:`~mslesion.services.imaging.geometry.MAX_SHEAR_DEG`.
    """
    # Not highdicom.spatial.get_volume_positions: it answers (None, None) for a bad stack,
    # while these checks name the sheared, duplicate or missing slices in the error.
    if len(frames) < 2:
        raise series.error(f"{len(frames)} slice(s): a 3D volume needs at least 2")
    direction = _orientation(series, frames)
    rows_cols = _common_value(series, frames, "Rows/Columns", lambda f: f.shape)
    spacing = _pixel_spacing(series, frames)
    if 0 in rows_cols:
        raise series.error("Rows or Columns is missing or zero")
    positions = np.array([f.position for f in frames])
    distances = positions @ direction[:, 2]
    order = [int(i) for i in np.argsort(distances, kind="stable")]
    ordered = [frames[i] for i in order]
    _check_gaps(series, ordered, distances[order])
    line = fit_slice_line(positions[order], direction[:, 2])
    _check_line(series, ordered, line)
    step = straight_step(line, direction[:, 2])
    step_mm = float(np.linalg.norm(step))
    slice_axis = step / step_mm
    grid = np.column_stack([direction[:, 0], direction[:, 1], slice_axis])
    return Stack(order, positions[order[0]], grid, (spacing[1], spacing[0], step_mm))


def _check_line(series: Series, frames: Sequence[Frame], line: SliceLine) -> None:
    """Refuse slices off the straight line through the stack, and too steep a shear."""
    worst = int(np.argmax(line.off_line_mm))
    if line.off_line_mm[worst] > OFF_LINE_ATOL_MM:
        raise series.error(
            f"slices are not stacked along one straight line: {frames[worst].label()} lies "
            f"{line.off_line_mm[worst]:.3f} mm within the slice plane from the line through "
            f"the other slices (at most {OFF_LINE_ATOL_MM} mm): a moved slice or a mix of "
            "stacks, not one volume"
        )
    if line.shear_deg > MAX_SHEAR_DEG:
        raise series.error(
            f"sheared stack: slice positions lean {line.shear_deg:.1f}° from the slice normal "
            f"(each slice is offset within its plane from the previous one); at most "
            f"{MAX_SHEAR_DEG:g}° (a gantry tilt) is supported"
        )


def _check_gaps(series: Series, frames: Sequence[Frame], distances: np.ndarray) -> None:
    """Check a regular slice spacing along the normal. Frames and distances are sorted."""
    gaps = np.diff(distances)
    duplicates = [i for i, g in enumerate(gaps) if g < GAP_ATOL_MM]
    if duplicates:
        raise series.error(_duplicate_message(series, frames, distances, duplicates))
    nominal = float(np.median(gaps))
    tol = gap_tolerance(nominal)
    irregular = [i for i, g in enumerate(gaps) if abs(g - nominal) > tol]
    if not irregular:
        return
    details = [_gap_detail(frames, distances, i, nominal) for i in irregular[:5]]
    more = f" and {len(irregular) - 5} more" if len(irregular) > 5 else ""
    multiples = [round(gaps[i] / nominal) for i in irregular]
    if all(
        k >= 2 and abs(gaps[i] - k * nominal) <= tol * k
        for i, k in zip(irregular, multiples, strict=True)
    ):
        absent = sum(k - 1 for k in multiples)
        raise series.error(
            f"missing slice(s): {absent} slice(s) absent from a stack with {nominal:.4g} mm "
            f"spacing, gaps at {'; '.join(details)}{more}"
        )
    raise series.error(
        f"inconsistent slice spacing: expected a regular {nominal:.4g} mm gap "
        f"(± {tol:.2g} mm) but found {'; '.join(details)}{more}"
    )


def _gap_detail(frames: Sequence[Frame], distances: np.ndarray, i: int, nominal: float) -> str:
    gap = distances[i + 1] - distances[i]
    return (
        f"{gap:.4g} mm between {frames[i].label()} and {frames[i + 1].label()} "
        f"({distances[i]:.2f} → {distances[i + 1]:.2f} mm along the normal)"
    )


def _duplicate_message(
    series: Series, frames: Sequence[Frame], distances: np.ndarray, duplicates: list[int]
) -> str:
    pairs = "; ".join(
        f"{frames[i].label()} and {frames[i + 1].label()} at {distances[i]:.2f} mm"
        for i in duplicates[:5]
    )
    message = f"duplicate slice positions: {len(duplicates)} slice(s) share a position ({pairs})"
    echoes = sorted({f.echo_time for f in frames if f.echo_time is not None})
    if len(echoes) > 1:
        listing = ", ".join(f"{t:g}" for t in echoes)
        message += f"; the series holds several echoes (TE {listing} ms): load one echo_time"
    return message
