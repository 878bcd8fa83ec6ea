"""The follow-up reading as a DICOM Comprehensive 3D SR following TID 1500.

The tree a PACS or SR viewer shows:

* observation context: the device (this node and the algorithm) is the observer;
* procedure reported: LOINC 24590-2 "MR Brain";
* one TID 1411 group per change category of a current lesion ("New lesions", "Enlarging
  lesions", "Stable lesions", "Shrinking lesions"), each on its segment of the follow-up SEG:
  number of lesions, volume now, volume at the prior study, and the change as a
  "Qualitative Difference";
* a TID 1501 group "Disappeared lesions" (no voxels now, so no segment): the same numbers;
* a TID 1501 group "Follow-up summary": total volume now and at the prior, number of
  current lesions, "MRI activity since prior study" (Yes/No) and the prior study's
  Study Instance UID;
* one group per tracked lesion whose tracking identifier is the lesion's **persistent**
  identity (its tracking UID and short name such as "L7", reused at every visit), so a
  viewer can follow one lesion across reports: TID 1411 on its category's segment, or
  TID 1501 for a disappeared lesion; volume now and at the prior, the change and the
  McDonald location. At most :data:`services.reporting.sr.MAX_LESION_GROUPS` of them, new
  and enlarging lesions first; the category groups always count every lesion.

The document is COMPLETE but UNVERIFIED and PRELIMINARY, like the single-study SR. The
prior study's FLAIR, when given, is recorded as evidence: highdicom files instances of
another study in the Pertinent Other Evidence Sequence (0040,A385).

Codes (standard where one fits, else a documented private scheme):

* the change: concept "Qualitative Difference" (DCM 111049, DICOM's concept for a change
  between a finding at two times), values as the follow-up SEG's type modifiers
  (:data:`services.reporting.followup_seg.CHANGE_CODES`; disappeared: SCT 272519000
  "Absent", DICOM CID 240);
* volume now: "Volume" (SCT 118565006) by "Sum of segmented voxel method for volume"
  (DCM 126030), as in the single-study SR; number of lesions: SCT 246206008;
* activity: values "Yes" SCT 373066001 / "No" SCT 373067005 (DICOM CID 230);
* private scheme ``99MSLESION`` (DICOM reserves designators starting with "99" for private
  schemes; it is declared in the Coding Scheme Identification Sequence): "Volume at prior
  study" (a concept of its own, so that a reader taking "the Volume" of a group always gets
  today's value, never the prior's), "McDonald 2017 lesion location" with values
  periventricular, juxtacortical, infratentorial, deep white matter (no standard codes for
  these MS-specific regions were found), "MRI activity since prior study" and "Prior study
  instance UID".
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import highdicom as hd
from pydicom import Dataset
from pydicom.sr.coding import Code

from mslesion.services.config import Settings
from mslesion.services.errors import InputError
from mslesion.services.followup.model import (
    ACTIVE_CATEGORIES,
    ChangeCategory,
    FollowUpReport,
    LesionChange,
    Location,
)
from mslesion.services.reporting.followup_seg import CHANGE_CODES, SEGMENT_NUMBERS
from mslesion.services.reporting.identity import (
    FOLLOWUP_SR_SERIES_NUMBER,
    new_uid,
)
from mslesion.services.reporting.seg import BRAIN, LESION_CATEGORY, LESION_TYPE, source_frame_count
from mslesion.services.reporting.sr import (
    LESIONS_UNIT,
    MAX_LESION_GROUPS,
    MILLILITRE,
    NUMBER_OF_LESIONS,
    VOLUME,
    VOLUME_METHOD,
    algorithm_id,
    encode_sr,
)

logger = logging.getLogger(__name__)

FOLLOWUP_SR_SERIES_DESCRIPTION = "MS lesion change measurements (research use, unverified)"
PRIVATE_SCHEME = "99MSLESION"
"""Designator of this product's private codes ("99" prefix: private, PS3.16 section 8)."""

QUALITATIVE_DIFFERENCE = Code("111049", "DCM", "Qualitative Difference")
PRIOR_VOLUME = Code("PRIOR_VOLUME", PRIVATE_SCHEME, "Volume at prior study")
MCDONALD_LOCATION = Code("MCDONALD_LOC", PRIVATE_SCHEME, "McDonald 2017 lesion location")
MRI_ACTIVITY = Code("MRI_ACTIVITY", PRIVATE_SCHEME, "MRI activity since prior study")
PRIOR_STUDY_UID = Code("PRIOR_STUDY_UID", PRIVATE_SCHEME, "Prior study instance UID")
YES = Code("373066001", "SCT", "Yes")
NO = Code("373067005", "SCT", "No")
LOCATION_CODES: dict[Location, Code] = {
    Location.PERIVENTRICULAR: Code("PERIVENTRICULAR", PRIVATE_SCHEME, "Periventricular"),
    Location.JUXTACORTICAL: Code("JUXTACORTICAL", PRIVATE_SCHEME, "Juxtacortical or cortical"),
    Location.INFRATENTORIAL: Code("INFRATENTORIAL", PRIVATE_SCHEME, "Infratentorial"),
    Location.DEEP_WHITE_MATTER: Code("DEEP_WM", PRIVATE_SCHEME, "Deep white matter"),
}
CATEGORY_GROUP_IDS: dict[ChangeCategory, str] = {
    ChangeCategory.NEW: "New lesions",
    ChangeCategory.ENLARGING: "Enlarging lesions",
    ChangeCategory.STABLE: "Stable lesions",
    ChangeCategory.SHRINKING: "Shrinking lesions",
    ChangeCategory.DISAPPEARED: "Disappeared lesions",
}
SUMMARY_ID = "Follow-up summary"
LISTING_ORDER = (
    ChangeCategory.NEW,
    ChangeCategory.ENLARGING,
    ChangeCategory.SHRINKING,
    ChangeCategory.DISAPPEARED,
    ChangeCategory.STABLE,
)
"""Order of the per-lesion groups: activity first, so a cap never drops a new lesion first."""

Group = (
    hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations
    | hd.sr.MeasurementsAndQualitativeEvaluations
)


@dataclass(frozen=True)
class _Context:
    """What every group of one report shares; builds fresh content items on each call.

    Each group gets its own items because a pydicom dataset must not appear twice in one
    content tree (editing one occurrence would silently change the other).
    """

    seg: hd.seg.Segmentation
    source_series_uid: str
    model_name: str
    model_version: str
    settings: Settings

    def segment(self, category: ChangeCategory) -> hd.sr.ReferencedSegment:
        """Reference to the SEG segment of ``category``, its source given as the series."""
        return hd.sr.ReferencedSegment(
            sop_class_uid=str(self.seg.SOPClassUID),
            sop_instance_uid=str(self.seg.SOPInstanceUID),
            segment_number=SEGMENT_NUMBERS[category],
            source_series=hd.sr.SourceSeriesForSegmentation(self.source_series_uid),
        )

    def algorithm(self) -> hd.sr.AlgorithmIdentification:
        """TID 4019 identification of the model behind the measurements."""
        return algorithm_id(self.model_name, self.model_version, self.settings)

    def new_tracking(self, identifier: str) -> hd.sr.TrackingIdentifier:
        """A tracking identifier with a new UID, for groups that are not lesions."""
        return hd.sr.TrackingIdentifier(uid=new_uid(self.settings), identifier=identifier)


def build_followup_sr(
    current_sources: Sequence[Dataset],
    seg: hd.seg.Segmentation,
    report: FollowUpReport,
    model_name: str,
    model_version: str,
    settings: Settings,
    prior_sources: Sequence[Dataset] = (),
    *,
    max_lesion_groups: int = MAX_LESION_GROUPS,
) -> hd.sr.Comprehensive3DSR:
    """Build the TID 1500 report of one follow-up comparison and its SEG.

    ``seg`` must be the follow-up SEG built from ``current_sources`` by
    :func:`services.reporting.followup_seg.build_followup_seg`; ``report`` the comparison
    whose ``category_map`` went into it. ``prior_sources`` (the prior FLAIR's datasets) are
    referenced as other evidence when given; the prior's Study Instance UID is in the
    summary group in any case.

    Raises:
        InputError: when the SEG does not derive from these images, the studies do not match
            the report, or a volume is not a finite number of ml.
    """
    source_frame_count(current_sources)
    _check_inputs(current_sources, seg, report, prior_sources)
    context = _Context(
        seg, str(current_sources[0].SeriesInstanceUID), model_name, model_version, settings
    )
    groups: list[Group] = [_category_group(report, c, context) for c in ChangeCategory]
    groups.append(_summary_group(report, context))
    groups += _per_lesion_groups(report.lesions, context, max_lesion_groups)
    return encode_sr(
        [seg, *current_sources, *prior_sources],  # the SEG first: patient and study
        groups,
        FOLLOWUP_SR_SERIES_NUMBER,
        FOLLOWUP_SR_SERIES_DESCRIPTION,
        model_name,
        model_version,
        settings,
        coding_schemes=[_private_scheme(settings)],
    )


def _check_inputs(
    current_sources: Sequence[Dataset],
    seg: hd.seg.Segmentation,
    report: FollowUpReport,
    prior_sources: Sequence[Dataset],
) -> None:
    """Refuse an SR whose SEG, studies or numbers do not belong together."""
    source_uids = {str(ds.SOPInstanceUID) for ds in current_sources}
    seg_sources = {str(uids[2]) for uids in seg.get_source_image_uids()}
    if not seg_sources <= source_uids:
        raise InputError(
            f"SEG {seg.SOPInstanceUID} references {len(seg_sources - source_uids)} instances "
            "that are not among the current images: build the SEG from the same FLAIR series"
        )
    for which, images, expected in (
        ("current", current_sources, report.current_study_instance_uid),
        ("prior", prior_sources, report.prior_study_instance_uid),
    ):
        found = {str(ds.StudyInstanceUID) for ds in images}
        if found and found != {expected}:
            raise InputError(
                f"the {which} images belong to study {sorted(found)}, but the report compares "
                f"{which} study {expected}"
            )
    numbers = {
        "total volume": report.total_volume_ml,
        "prior total volume": report.prior_total_volume_ml,
        **{f"volume of {les.tracking_id}": les.volume_ml for les in report.lesions},
        **{f"prior volume of {les.tracking_id}": les.prior_volume_ml for les in report.lesions},
    }
    for what, value in numbers.items():
        if not math.isfinite(value) or value < 0:
            raise InputError(f"{what} must be a finite number of ml >= 0, got {value}")


def _private_scheme(settings: Settings) -> hd.coding_schemes.CodingSchemeIdentificationItem:
    """Declaration of the private codes (PS3.3 C.12.1.1.4: each scheme used is identified)."""
    return hd.coding_schemes.CodingSchemeIdentificationItem(
        designator=PRIVATE_SCHEME,
        name="mslesion follow-up codes",
        responsible_organization=settings.manufacturer,
    )


def _volumes(now_ml: float, prior_ml: float) -> list[hd.sr.Measurement]:
    """Volume now and at the prior study, both by counting segmented voxels."""
    return [
        hd.sr.Measurement(name=VOLUME, value=now_ml, unit=MILLILITRE, method=VOLUME_METHOD),
        hd.sr.Measurement(name=PRIOR_VOLUME, value=prior_ml, unit=MILLILITRE, method=VOLUME_METHOD),
    ]


def _count(n: int) -> hd.sr.Measurement:
    return hd.sr.Measurement(name=NUMBER_OF_LESIONS, value=n, unit=LESIONS_UNIT)


def _change(category: ChangeCategory) -> hd.sr.QualitativeEvaluation:
    return hd.sr.QualitativeEvaluation(name=QUALITATIVE_DIFFERENCE, value=CHANGE_CODES[category])


def _group(
    tracking: hd.sr.TrackingIdentifier,
    category: ChangeCategory,
    measurements: list[hd.sr.Measurement],
    evaluations: list[hd.sr.QualitativeEvaluation],
    context: _Context,
) -> Group:
    """A lesion group: on its category's segment (TID 1411), or TID 1501 when disappeared."""
    if category in SEGMENT_NUMBERS:
        return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking,
            referenced_segment=context.segment(category),
            finding_type=LESION_TYPE,
            finding_category=LESION_CATEGORY,
            finding_sites=[hd.sr.FindingSite(BRAIN)],
            algorithm_id=context.algorithm(),
            measurements=measurements,
            qualitative_evaluations=evaluations,
        )
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking,
        finding_type=LESION_TYPE,
        finding_category=LESION_CATEGORY,
        finding_sites=[hd.sr.FindingSite(BRAIN)],
        algorithm_id=context.algorithm(),
        measurements=measurements,
        qualitative_evaluations=evaluations,
    )


def _category_group(report: FollowUpReport, category: ChangeCategory, context: _Context) -> Group:
    """Count and volumes of every lesion of ``category``, whatever the per-lesion cap."""
    members = [les for les in report.lesions if les.category == category]
    measurements = [
        _count(report.counts.get(category, len(members))),
        *_volumes(sum(m.volume_ml for m in members), sum(m.prior_volume_ml for m in members)),
    ]
    tracking = context.new_tracking(CATEGORY_GROUP_IDS[category])
    return _group(tracking, category, measurements, [_change(category)], context)


def _summary_group(
    report: FollowUpReport, context: _Context
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """Totals, activity and the prior study's UID (TID 1501: it spans all segments)."""
    current = sum(1 for les in report.lesions if les.category != ChangeCategory.DISAPPEARED)
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=context.new_tracking(SUMMARY_ID),
        finding_sites=[hd.sr.FindingSite(BRAIN)],
        algorithm_id=context.algorithm(),
        measurements=[
            _count(current),
            *_volumes(report.total_volume_ml, report.prior_total_volume_ml),
        ],
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(name=MRI_ACTIVITY, value=YES if report.activity else NO)
        ],
    )
    # TID 1501 is extensible and highdicom has no argument for it: the prior study is named
    # here even when its images are not at hand as evidence.
    group[0].ContentSequence.append(
        hd.sr.UIDRefContentItem(
            name=PRIOR_STUDY_UID,
            value=report.prior_study_instance_uid,
            relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
        )
    )
    return group


def listing_order(lesions: Sequence[LesionChange]) -> list[LesionChange]:
    """Lesions in the order of the per-lesion groups: by :data:`LISTING_ORDER`, largest first.

    Size is the larger of the two volumes, so a disappeared lesion sorts by its prior size.
    """
    rank = {category: i for i, category in enumerate(LISTING_ORDER)}
    return sorted(
        lesions,
        key=lambda les: (
            rank[les.category],
            -max(les.volume_ml, les.prior_volume_ml),
            les.tracking_id,
        ),
    )


def _per_lesion_groups(lesions: Sequence[LesionChange], context: _Context, cap: int) -> list[Group]:
    """One group per tracked lesion under its persistent identity, at most ``cap``."""
    ordered = listing_order(lesions)
    if len(ordered) > cap:
        active = sum(1 for les in ordered if les.category in ACTIVE_CATEGORIES)
        logger.warning(
            "follow-up SR lists %d of %d lesions (%d active); category counts cover all",
            cap,
            len(ordered),
            active,
        )
    return [
        _group(
            hd.sr.TrackingIdentifier(uid=les.tracking_uid, identifier=les.tracking_id),
            les.category,
            _volumes(les.volume_ml, les.prior_volume_ml),
            [
                _change(les.category),
                hd.sr.QualitativeEvaluation(
                    name=MCDONALD_LOCATION, value=LOCATION_CODES[les.location]
                ),
            ],
            context,
        )
        for les in ordered[:cap]
    ]
