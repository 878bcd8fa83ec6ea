"""The follow-up reading as a DICOM SEG: the current lesions, coloured by how they changed.

One BINARY segment per change category of a current lesion, on the current FLAIR's own grid:
frame ``i`` lies on source frame ``i``, exactly as the single-study SEG
(:mod:`services.reporting.seg`, whose frame and geometry checks this module reuses).

===  ==========================  ============================  =======
 #   label                       type modifier (SNOMED CT)     colour
===  ==========================  ============================  =======
 1   New MS lesions              7147002 "New"                 yellow
 2   Enlarging MS lesions        35105006 "Increased"          orange
 3   Stable MS lesions           58158008 "Stable"             blue
 4   Shrinking MS lesions        1250004 "Decreased"           green
===  ==========================  ============================  =======

All four segments are always written, empty or not: DICOM numbers the segments of a BINARY
SEG from 1 without gaps (PS3.3 C.8.20.4, which highdicom enforces), and a fixed number per
category lets viewer presets and the follow-up SR (which references the segment of each
lesion's category) rely on it. An empty segment has no frames, so it costs a few hundred
bytes. Disappeared lesions have no voxels now and appear in the SR only.

Codes. Category "Morphologically abnormal structure" (SCT 49755003) and type "Lesion"
(SCT 52988006) as in the single-study SEG (DICOM CID 7150 / CID 7159). A demyelination
morphology code was not used: none could be verified in DICOM's code tables, and MS is
named in the label and series description instead. The change is a Segmented Property Type
Modifier (0062,0011) inside the type item, taken from SNOMED CT's "change values" qualifier
hierarchy (288533004): Increased 35105006, Decreased 1250004 and Stable 58158008 as listed
by HL7's DeltaFlag value set (hl7.org/fhir/DSTU1/hspc-DeltaFlag.html), New 7147002 as in
the ACR/RSNA Open Imaging Finding Model standard codes (findingmodelforge); the same codes
are the values of the SR's "Qualitative Difference" evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
import numpy as np
from pydicom import Dataset
from pydicom.sr.coding import Code

from mslesion.services.config import Settings
from mslesion.services.errors import InputError
from mslesion.services.followup.analysis import CATEGORY_VALUE
from mslesion.services.followup.model import ChangeCategory
from mslesion.services.reporting.identity import (
    ALGORITHM_FAMILY,
    FOLLOWUP_SEG_SERIES_NUMBER,
    algorithm_name,
)
from mslesion.services.reporting.seg import (
    BRAIN,
    LESION_CATEGORY,
    LESION_TYPE,
    encode_seg,
    patient_affine,
    source_frame_count,
)

FOLLOWUP_SEG_SERIES_DESCRIPTION = "MS lesion change (research use, unverified)"
FOLLOWUP_SEG_CONTENT_LABEL = "MS_LESION_CHANGE"  # CS: upper case, at most 16 characters

CHANGE_CODES: dict[ChangeCategory, Code] = {
    ChangeCategory.NEW: Code("7147002", "SCT", "New"),
    ChangeCategory.ENLARGING: Code("35105006", "SCT", "Increased"),
    ChangeCategory.STABLE: Code("58158008", "SCT", "Stable"),
    ChangeCategory.SHRINKING: Code("1250004", "SCT", "Decreased"),
    ChangeCategory.DISAPPEARED: Code("272519000", "SCT", "Absent"),  # DICOM CID 240
}
"""The change of a lesion as a SNOMED CT qualifier value (see the module docstring)."""

SEGMENT_NUMBERS: dict[ChangeCategory, int] = {
    ChangeCategory.NEW: 1,
    ChangeCategory.ENLARGING: 2,
    ChangeCategory.STABLE: 3,
    ChangeCategory.SHRINKING: 4,
}
"""Fixed segment number of each category that has voxels now (disappeared has none)."""

SEGMENT_LABELS: dict[ChangeCategory, str] = {
    ChangeCategory.NEW: "New MS lesions",
    ChangeCategory.ENLARGING: "Enlarging MS lesions",
    ChangeCategory.STABLE: "Stable MS lesions",
    ChangeCategory.SHRINKING: "Shrinking MS lesions",
}

CATEGORY_RGB: dict[ChangeCategory, tuple[int, int, int]] = {
    ChangeCategory.NEW: (255, 230, 0),  # yellow: the finding a reader looks for first
    ChangeCategory.ENLARGING: (255, 128, 0),  # orange: also activity, told apart from new
    ChangeCategory.STABLE: (70, 130, 255),  # blue: calm, far from the active colours
    ChangeCategory.SHRINKING: (0, 200, 110),  # green
}
"""Recommended display colour of each segment; the montage uses the same ones."""


def check_category_map(source_images: Sequence[Dataset], category_map: np.ndarray) -> np.ndarray:
    """Return ``category_map`` as uint8 after checking its shape and values.

    Raises:
        InputError: when the shape is not (frames, rows, columns) of the source images or a
            value is not 0 or one of :data:`services.followup.analysis.CATEGORY_VALUE`.
    """
    frames = source_frame_count(source_images)
    expected = (frames, int(source_images[0].Rows), int(source_images[0].Columns))
    if category_map.shape != expected:
        raise InputError(
            f"category map has shape {category_map.shape} but the source images are (frames, "
            f"rows, columns) = {expected}: it must be on the current FLAIR's native grid"
        )
    values = np.unique(category_map)
    allowed = (0, *CATEGORY_VALUE.values())
    if not np.isin(values, allowed).all():
        raise InputError(
            f"category map holds values {values[~np.isin(values, allowed)][:10].tolist()}; "
            f"allowed are {list(allowed)}"
        )
    return category_map.astype(np.uint8, copy=False)


def segment_label_map(category_map: np.ndarray) -> np.ndarray:
    """The category map with each category's voxels set to its segment number."""
    lookup = np.zeros(256, np.uint8)
    for category, value in CATEGORY_VALUE.items():
        lookup[value] = SEGMENT_NUMBERS[category]
    return lookup[category_map.astype(np.uint8, copy=False)]


def change_segment_descriptions(
    model_name: str, model_version: str
) -> list[hd.seg.SegmentDescription]:
    """The four segments, numbered and coloured per category (see the module docstring)."""
    descriptions = []
    for category, number in sorted(SEGMENT_NUMBERS.items(), key=lambda item: item[1]):
        description = hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=SEGMENT_LABELS[category],
            segmented_property_category=LESION_CATEGORY,
            segmented_property_type=LESION_TYPE,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=hd.AlgorithmIdentificationSequence(
                name=algorithm_name(model_name), family=ALGORITHM_FAMILY, version=model_version
            ),
            anatomic_regions=[BRAIN],
            display_color=hd.color.CIELabColor.from_rgb(*CATEGORY_RGB[category]),
        )
        # highdicom has no argument for the modifier; DICOM nests it in the type's item.
        type_item = description.SegmentedPropertyTypeCodeSequence[0]
        type_item.SegmentedPropertyTypeModifierCodeSequence = [
            hd.sr.CodedConcept.from_code(CHANGE_CODES[category])
        ]
        descriptions.append(description)
    return descriptions


def build_followup_seg(
    current_sources: Sequence[Dataset],
    category_map: np.ndarray,
    model_name: str,
    model_version: str,
    settings: Settings,
) -> hd.seg.Segmentation:
    """Encode the change category of every current lesion voxel as a BINARY DICOM SEG.

    ``current_sources`` are the current FLAIR's single-frame instances in the order of the
    map's axis 0 (or one multi-frame instance whose frames match it), as for
    :func:`services.reporting.seg.build_seg`; ``category_map`` is
    :attr:`services.followup.analysis.FollowUpAnalysis.category_map`. Frames without lesion
    are omitted; a map without any lesion still gives a SEG (four empty segments).

    Raises:
        InputError: when the images or the map break the rules above.
    """
    labels = segment_label_map(check_category_map(current_sources, category_map))
    patient_affine(current_sources)  # refuse irregular stacks before encoding anything
    return encode_seg(
        current_sources,
        labels,
        change_segment_descriptions(model_name, model_version),
        FOLLOWUP_SEG_SERIES_NUMBER,
        FOLLOWUP_SEG_CONTENT_LABEL,
        FOLLOWUP_SEG_SERIES_DESCRIPTION,
        model_name,
        model_version,
        settings,
    )
