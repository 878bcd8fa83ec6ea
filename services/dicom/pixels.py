"""Pixel data: series decoded into volumes, and the source datasets behind a volume.

One series is decoded and stacked into a SimpleITK volume; the full source datasets behind a
volume are read for the outputs that reference them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset

from mslesion.services.dicom.checks import series_problem
from mslesion.services.dicom.geometry import Frame, check_size, series_frames, stack_frames
from mslesion.services.dicom.sources import Opener, SourceFile
from mslesion.services.dicom.study import Series, SeriesVolume


def _decode(series: Series, source: SourceFile, opener: Opener) -> np.ndarray:
    try:
        with opener.open(source) as fp:
            dataset = pydicom.dcmread(fp)
            pixels = dataset.pixel_array
    except Exception as exc:  # pydicom and its plugins raise many types for damaged data
        raise series.error(
            f"{source}: truncated or corrupt file, pixel data unreadable ({exc})"
        ) from exc
    photometric = str(dataset.get("PhotometricInterpretation", ""))
    if photometric != "MONOCHROME2" or int(dataset.get("SamplesPerPixel", 1)) != 1:
        raise series.error(
            f"{source}: PhotometricInterpretation {photometric!r} (only MONOCHROME2 is supported)"
        )
    return np.asarray(pixels)


def _assemble(series: Series, frames: Sequence[Frame]) -> np.ndarray:
    rows, cols = frames[0].shape
    volume = np.empty((len(frames), rows, cols), dtype=np.float32)
    multi_frame: dict[SourceFile, np.ndarray] = {}
    with Opener() as opener:
        for z, frame in enumerate(frames):
            if frame.index is None:
                plane = _decode(series, frame.source, opener)
            else:
                if frame.source not in multi_frame:
                    multi_frame[frame.source] = _decode(series, frame.source, opener)
                decoded = multi_frame[frame.source]
                plane = decoded[frame.index] if decoded.ndim == 3 else decoded
            if plane.shape != (rows, cols):
                raise series.error(
                    f"{frame.source}: pixel data shape {plane.shape}, expected {(rows, cols)}"
                )
            volume[z] = plane.astype(np.float64) * frame.slope + frame.intercept
    return volume


def load_series_volume(series: Series, *, echo_time: float | None = None) -> SeriesVolume:
    """Decode one series and stack its slices into a float32 SimpleITK volume (LPS geometry).

    ``echo_time`` (ms) keeps only the images of that echo of a multi-echo series. Raises
    :class:`DicomInputError` for a non-MR or non-image series, an undecodable transfer syntax,
    several orientations, duplicate positions, missing slices, irregular spacing, and for
    truncated or corrupt files (named).
    """
    problem = series_problem(series)
    if problem:
        raise series.error(problem)
    frames = series_frames(series, echo_time)
    check_size(series, frames)
    stack = stack_frames(series, frames)
    ordered = [frames[i] for i in stack.order]
    image = sitk.GetImageFromArray(_assemble(series, ordered))
    image.SetOrigin(tuple(float(v) for v in stack.origin))
    image.SetSpacing(stack.spacing)
    image.SetDirection(tuple(float(v) for v in stack.direction.ravel()))
    return SeriesVolume(
        series=series,
        image=image,
        frames=[f.source_frame() for f in ordered],
        headers=[f.header for f in ordered],
    )


def read_source_datasets(volume: SeriesVolume) -> list[Dataset]:
    """Full datasets (pixel data included) behind ``volume``, in its z order.

    One dataset per distinct source file: a single-frame series gives one per slice, an
    Enhanced MR instance appears once. Output objects (SEG) reference these instances.
    """
    seen: dict[SourceFile, None] = {}
    for frame in volume.frames:
        seen.setdefault(frame.source, None)
    datasets: list[Dataset] = []
    with Opener() as opener:
        for source in seen:
            with opener.open(source) as fh:
                datasets.append(pydicom.dcmread(fh))
    return datasets
