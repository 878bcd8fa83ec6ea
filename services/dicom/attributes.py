"""Values read from DICOM headers, whether classic or Enhanced MR.

Enhanced MR keeps most attributes in functional-group macros (per frame, then shared);
:func:`attribute` finds them there when they are not at the top level.
"""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue


def strings(value: Any) -> tuple[str, ...]:
    """A CS value (single or multi-valued) as a tuple of upper-case strings."""
    if value is None or value == "":
        return ()
    items = value if isinstance(value, list | tuple | MultiValue) else [value]
    return tuple(str(v).strip().upper() for v in items if str(v).strip())


def number(value: Any) -> float | None:
    """A numeric value (the first of a multi-valued one) as a float; None if absent or bad."""
    if isinstance(value, list | tuple | MultiValue):
        value = value[0] if len(value) else None
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _functional_groups(header: Dataset, frame: int | None = 0) -> list[Dataset]:
    """Per-frame then shared functional group items of an Enhanced MR frame, most specific first."""
    items: list[Dataset] = []
    per_frame = header.get("PerFrameFunctionalGroupsSequence")
    if per_frame and frame is not None and frame < len(per_frame):
        items.append(per_frame[frame])
    shared = header.get("SharedFunctionalGroupsSequence")
    if shared:
        items.append(shared[0])
    return items


def attribute(header: Dataset, keyword: str, frame: int | None = 0) -> Any:
    """An attribute at the top level, else inside a functional-group macro of ``frame``."""
    if keyword in header:
        return header[keyword].value
    for group in _functional_groups(header, frame):
        for element in group:
            if element.VR == "SQ" and element.value and keyword in element.value[0]:
                return element.value[0][keyword].value
    return None


def frame_echo_time(header: Dataset, frame: int | None = 0) -> float | None:
    """EchoTime of a frame (EffectiveEchoTime for Enhanced MR), in ms."""
    value = attribute(header, "EchoTime", frame)
    return number(value if value is not None else attribute(header, "EffectiveEchoTime", frame))


def n_frames(header: Dataset) -> int:
    """NumberOfFrames; 1 for a single-frame instance."""
    value = header.get("NumberOfFrames")
    return int(value) if value not in (None, "") else 1
