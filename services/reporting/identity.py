"""Who made an output: UIDs, equipment, algorithm identification and the research disclaimer.

Shared by the SEG, SR, JSON and montage writers so that every output names the same device,
algorithm and disclaimer.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from importlib import metadata
from typing import cast

from pydicom import Dataset
from pydicom.sr.coding import Code
from pydicom.uid import UID, generate_uid

from mslesion.services.config import Settings
from mslesion.services.disclaimer import (  # re-exported for the writers
    RESEARCH_DISCLAIMER as RESEARCH_DISCLAIMER,
)

SEG_SERIES_NUMBER = 9001
SR_SERIES_NUMBER = 9002
FOLLOWUP_SEG_SERIES_NUMBER = 9003
FOLLOWUP_SR_SERIES_NUMBER = 9004
FOLLOWUP_SC_SERIES_NUMBER = 9005
"""High series numbers so PACS lists the derived series after the acquired ones."""

ALGORITHM_FAMILY = Code("123110", "DCM", "Artificial Intelligence")

_PACKAGE = "mslesion"
_MAX_CODE_VALUE_CHARS = 16  # VR SH of Code Value (0008,0100)
_TYPE2_STUDY_KEYWORDS = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
)


def new_uid(settings: Settings) -> UID:
    """Return a fresh random UID under the site's ``uid_root``."""
    return generate_uid(prefix=settings.uid_root)


def device_uid(settings: Settings) -> UID:
    """Return the stable UID of this node as an SR device observer.

    Derived from manufacturer, model and serial number, so one installation always reports
    under the same observer UID (PACS can group reports by device) without storing state.
    """
    sources = [
        settings.manufacturer,
        settings.manufacturer_model_name,
        settings.device_serial_number,
    ]
    return generate_uid(prefix=settings.uid_root, entropy_srcs=sources)


def package_version() -> str:
    """Version of the installed mslesion package (``unknown`` when run from a bare tree)."""
    try:
        return metadata.version(_PACKAGE)
    except metadata.PackageNotFoundError:
        return "unknown"


def software_versions(model_name: str, model_version: str) -> tuple[str]:
    """SoftwareVersions (0018,1020): the program and the model, as two values.

    The model is named here too because the same program gives different results with
    another model; each value stays within the 64 characters of VR LO.
    """
    values = [f"{_PACKAGE} {package_version()}"[:64], f"{model_name} {model_version}"[:64]]
    # highdicom annotates the multi-valued form as ``tuple[str]``, but pydicom only takes a
    # list as a multi-value without warning; highdicom passes it through unchanged.
    return cast("tuple[str]", values)


def algorithm_name(model_name: str) -> str:
    """Name under which the algorithm appears in SEG and SR (program and model)."""
    return f"{_PACKAGE} {model_name}"


def with_study_defaults(dataset: Dataset) -> Dataset:
    """Return ``dataset``, or a copy with empty values for missing type 2 patient/study attributes.

    highdicom copies these attributes by attribute access and fails on real-world images that
    omit them (e.g. Study ID). The copy shares the data elements but never alters the caller's
    dataset.
    """
    missing = [kw for kw in _TYPE2_STUDY_KEYWORDS if kw not in dataset]
    if not missing:
        return dataset
    patched = Dataset({element.tag: element for element in dataset})
    for keyword in missing:
        setattr(patched, keyword, None)
    return patched


def repair_long_code_values(dataset: Dataset) -> int:
    """Move code values over 16 characters to Long Code Value (0008,0119); return how many.

    highdicom copies patient attributes such as the De-identification Method Code Sequence
    from the source, and de-identification tools write private code values too long for
    Code Value's VR, which makes validators report an error in our output. DICOM puts such
    codes in Long Code Value. Sequences are deep-copied before the repair because the
    copied elements are shared with the caller's source datasets.
    """
    repaired = 0
    for element in list(dataset):
        if element.VR == "SQ" and _has_long_code_value(element.value):
            fixed = copy.deepcopy(element)
            repaired += _move_long_code_values(fixed.value)
            dataset[element.tag] = fixed
    return repaired


def _has_long_code_value(items: Sequence[Dataset]) -> bool:
    """Whether any item, at any depth, has a Code Value longer than SH allows."""
    for item in items:
        if len(str(item.get("CodeValue", ""))) > _MAX_CODE_VALUE_CHARS:
            return True
        if any(e.VR == "SQ" and _has_long_code_value(e.value) for e in item):
            return True
    return False


def _move_long_code_values(items: Sequence[Dataset]) -> int:
    """In place: Code Value -> Long Code Value where too long; count the moves."""
    moved = 0
    for item in items:
        if len(str(item.get("CodeValue", ""))) > _MAX_CODE_VALUE_CHARS:
            item.LongCodeValue = str(item.CodeValue)
            del item.CodeValue
            moved += 1
        for element in item:
            if element.VR == "SQ":
                moved += _move_long_code_values(element.value)
    return moved
