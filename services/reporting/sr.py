"""Lesion numbers as a DICOM Comprehensive 3D SR following TID 1500 (Measurement Report).

The tree a PACS or SR viewer shows:

* observation context: the device (this node and the algorithm) is the observer;
* procedure reported: LOINC 24590-2 "MR Brain";
* measurement group "All MS lesions" (TID 1411), referencing the SEG's lesion segment:
  total lesion volume (ml) and number of lesions;
* one TID 1411 group per lesion, "lesion 1" (largest) to "lesion N", each with its own
  tracking UID and volume (ml), referencing the same segment (the SEG has one segment for
  all lesions); at most :data:`MAX_LESION_GROUPS` groups;
* measurement group "Brain" (TID 1501): brain volume (ml), finding site brain.

The document is COMPLETE but UNVERIFIED and PRELIMINARY: no physician has signed it.

Lesion centroids are not encoded in the SR: TID 1411 has no row for a point, and highdicom
refuses spatial coordinates inside a group whose region is a referenced segment. They are in
the JSON report, and the SEG shows where every lesion is.
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
from mslesion.services.reporting.identity import (
    ALGORITHM_FAMILY,
    SR_SERIES_NUMBER,
    algorithm_name,
    device_uid,
    new_uid,
    repair_long_code_values,
    software_versions,
)
from mslesion.services.reporting.seg import (
    BRAIN,
    LESION_CATEGORY,
    LESION_SEGMENT_NUMBER,
    LESION_TYPE,
    source_frame_count,
)
from mslesion.services.segmentation.postprocess import Lesion, LesionReport

logger = logging.getLogger(__name__)

MAX_LESION_GROUPS = 200
"""Per-lesion groups kept, largest lesions first.

MS rarely gives more than a few dozen lesions; hundreds mean noise or a failed scan, and
thousands of groups make SR viewers unusable. Totals and count always cover every lesion.
"""

SR_SERIES_DESCRIPTION = "MS lesion measurements (research use, unverified)"
PROCEDURE_MR_BRAIN = Code("24590-2", "LN", "MR Brain")
VOLUME = Code("118565006", "SCT", "Volume")
NUMBER_OF_LESIONS = Code("246206008", "SCT", "Number of lesions")
VOLUME_METHOD = Code("126030", "DCM", "Sum of segmented voxel method for volume")
MILLILITRE = Code("ml", "UCUM", "milliliter")
LESIONS_UNIT = Code("{lesions}", "UCUM", "lesions")
ALL_LESIONS_ID = "All MS lesions"
BRAIN_ID = "Brain"
DEVICE_OBSERVER = hd.sr.CodedConcept("121007", "DCM", "Device")


def lesion_tracking_id(rank: int) -> str:
    """Human-readable tracking identifier of the ``rank``-th largest lesion (1-based)."""
    return f"lesion {rank}"


def rank_lesions(lesions: Sequence[Lesion]) -> list[Lesion]:
    """Lesions largest first (ties by label): the order behind "lesion 1", "lesion 2", ..."""
    return sorted(lesions, key=lambda lesion: (-lesion.volume_ml, lesion.label))


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

    def segment(self) -> hd.sr.ReferencedSegment:
        """Reference to the SEG's lesion segment, its source given as the FLAIR series.

        The series (one item) rather than every source image (hundreds of items per group)
        keeps the SR small; the SEG itself lists each source frame.
        """
        return hd.sr.ReferencedSegment(
            sop_class_uid=str(self.seg.SOPClassUID),
            sop_instance_uid=str(self.seg.SOPInstanceUID),
            segment_number=LESION_SEGMENT_NUMBER,
            source_series=hd.sr.SourceSeriesForSegmentation(self.source_series_uid),
        )

    def algorithm(self) -> hd.sr.AlgorithmIdentification:
        """TID 4019 identification of the model that made the measurements."""
        return algorithm_id(self.model_name, self.model_version, self.settings)

    def tracking(self, identifier: str, uid: str | None = None) -> hd.sr.TrackingIdentifier:
        """A tracking identifier with ``uid``, or a new UID under the site's root."""
        return hd.sr.TrackingIdentifier(uid=uid or new_uid(self.settings), identifier=identifier)


def build_sr(
    source_images: Sequence[Dataset],
    seg: hd.seg.Segmentation,
    lesion_report: LesionReport,
    brain_volume_ml: float,
    model_name: str,
    model_version: str,
    settings: Settings,
    *,
    max_lesion_groups: int = MAX_LESION_GROUPS,
    tracking_uids: Sequence[str] = (),
) -> hd.sr.Comprehensive3DSR:
    """Build the TID 1500 measurement report of one FLAIR series and its lesion SEG.

    ``seg`` must be the SEG built from ``source_images`` by
    :func:`services.reporting.seg.build_seg`; ``lesion_report`` the lesions of the same mask
    with volumes in ml. Lesions are listed largest first as "lesion 1", "lesion 2", ... up to
    ``max_lesion_groups`` of them (highdicom needs about 30-70 ms per group on one core).
    ``tracking_uids`` (largest lesion first) are the lesions' tracking UIDs, so the JSON
    report and a later follow-up reading can name the same lesion; fresh UIDs otherwise.

    Raises:
        InputError: when the SEG does not derive from these images, or a number is negative
            or not finite.
    """
    source_frame_count(source_images)
    _check_inputs(source_images, seg, lesion_report, brain_volume_ml)
    context = _Context(
        seg, str(source_images[0].SeriesInstanceUID), model_name, model_version, settings
    )
    groups: list[
        hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations
        | hd.sr.MeasurementsAndQualitativeEvaluations
    ] = [_all_lesions_group(lesion_report, context)]
    groups += _per_lesion_groups(lesion_report.lesions, context, max_lesion_groups, tracking_uids)
    groups.append(_brain_group(brain_volume_ml, context))
    return encode_sr(
        [seg, *source_images],  # the SEG first: it has every patient/study attribute
        groups,
        SR_SERIES_NUMBER,
        SR_SERIES_DESCRIPTION,
        model_name,
        model_version,
        settings,
    )


def encode_sr(
    evidence: Sequence[Dataset],
    groups: Sequence[
        hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations
        | hd.sr.MeasurementsAndQualitativeEvaluations
    ],
    series_number: int,
    series_description: str,
    model_name: str,
    model_version: str,
    settings: Settings,
    coding_schemes: Sequence[hd.coding_schemes.CodingSchemeIdentificationItem] = (),
) -> hd.sr.Comprehensive3DSR:
    """A COMPLETE, unverified, preliminary TID 1500 report of ``groups`` by this node's model.

    Shared by the single-study and the follow-up SR: same observer, procedure, equipment and
    status. ``evidence`` starts with a dataset holding every patient/study attribute.
    """
    content = hd.sr.MeasurementReport(
        observation_context=observation_context(model_name, settings),
        procedure_reported=PROCEDURE_MR_BRAIN,
        imaging_measurements=list(groups),
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=list(evidence),
        content=content,
        series_instance_uid=new_uid(settings),
        series_number=series_number,
        sop_instance_uid=new_uid(settings),
        instance_number=1,
        manufacturer=settings.manufacturer,
        is_complete=True,
        is_final=False,
        is_verified=False,
        institution_name=settings.institution_name,
        series_description=series_description,
        manufacturer_model_name=settings.manufacturer_model_name,
        software_versions=software_versions(model_name, model_version),
        device_serial_number=settings.device_serial_number,
        coding_schemes=list(coding_schemes) or None,
    )
    repair_long_code_values(sr)
    return sr


def algorithm_id(
    model_name: str, model_version: str, settings: Settings
) -> hd.sr.AlgorithmIdentification:
    """TID 4019 identification of the named model of this node."""
    return hd.sr.AlgorithmIdentification(
        name=algorithm_name(model_name),
        version=model_version,
        family=ALGORITHM_FAMILY,
        manufacturer=settings.manufacturer,
    )


def _check_inputs(
    source_images: Sequence[Dataset],
    seg: hd.seg.Segmentation,
    lesion_report: LesionReport,
    brain_volume_ml: float,
) -> None:
    """Refuse an SR whose SEG is of other images or whose numbers are not volumes."""
    source_uids = {str(ds.SOPInstanceUID) for ds in source_images}
    seg_sources = {str(uids[2]) for uids in seg.get_source_image_uids()}
    if not seg_sources <= source_uids:
        raise InputError(
            f"SEG {seg.SOPInstanceUID} references {len(seg_sources - source_uids)} instances "
            "that are not among the source images: build the SEG from the same FLAIR series"
        )
    numbers = {
        "brain volume": brain_volume_ml,
        "total lesion volume": lesion_report.total_volume_ml,
        **{f"volume of lesion {les.label}": les.volume_ml for les in lesion_report.lesions},
    }
    for what, value in numbers.items():
        if not math.isfinite(value) or value < 0:
            raise InputError(f"{what} must be a finite number of ml >= 0, got {value}")
    if lesion_report.lesion_count < 0:
        raise InputError(f"lesion count must be >= 0, got {lesion_report.lesion_count}")


def observation_context(model_name: str, settings: Settings) -> hd.sr.ObservationContext:
    """The device observer: this node running the named model."""
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=device_uid(settings),
        name=algorithm_name(model_name),
        manufacturer_name=settings.manufacturer,
        model_name=settings.manufacturer_model_name,
        serial_number=settings.device_serial_number,
    )
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=DEVICE_OBSERVER,
            observer_identifying_attributes=device,
        )
    )


def _volume(value_ml: float, method: Code | None = VOLUME_METHOD) -> hd.sr.Measurement:
    """A volume in ml; by default measured by counting segmented voxels."""
    return hd.sr.Measurement(name=VOLUME, value=value_ml, unit=MILLILITRE, method=method)


def _lesion_group(
    tracking_id: str,
    measurements: list[hd.sr.Measurement],
    context: _Context,
    tracking_uid: str | None = None,
) -> hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations:
    """A TID 1411 group on the lesion segment, finding "Lesion" in the brain."""
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=context.tracking(tracking_id, tracking_uid),
        referenced_segment=context.segment(),
        finding_type=LESION_TYPE,
        finding_category=LESION_CATEGORY,
        finding_sites=[hd.sr.FindingSite(BRAIN)],
        algorithm_id=context.algorithm(),
        measurements=measurements,
    )


def _all_lesions_group(
    lesion_report: LesionReport, context: _Context
) -> hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations:
    """Total lesion volume and lesion count over the whole segment."""
    count = hd.sr.Measurement(
        name=NUMBER_OF_LESIONS, value=lesion_report.lesion_count, unit=LESIONS_UNIT
    )
    return _lesion_group(ALL_LESIONS_ID, [_volume(lesion_report.total_volume_ml), count], context)


def _per_lesion_groups(
    lesions: Sequence[Lesion], context: _Context, cap: int, tracking_uids: Sequence[str] = ()
) -> list[hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations]:
    """One group per lesion, largest first, at most ``cap`` of them."""
    ranked = rank_lesions(lesions)
    if tracking_uids and len(tracking_uids) != len(ranked):
        raise InputError(f"{len(tracking_uids)} tracking UIDs given for {len(ranked)} lesions")
    uids: list[str | None] = list(tracking_uids) or [None] * len(ranked)
    if len(ranked) > cap:
        logger.warning(
            "SR lists the %d largest of %d lesions; totals cover all of them", cap, len(ranked)
        )
    return [
        _lesion_group(lesion_tracking_id(rank), [_volume(lesion.volume_ml)], context, uid)
        for rank, (lesion, uid) in enumerate(zip(ranked[:cap], uids, strict=False), start=1)
    ]


def _brain_group(
    brain_volume_ml: float, context: _Context
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """Brain volume (TID 1501): no brain SEG is stored, so the group references no region.

    No measurement method is claimed: the volume comes from the pipeline's brain mask,
    which this module does not see.
    """
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=context.tracking(BRAIN_ID),
        finding_sites=[hd.sr.FindingSite(BRAIN)],
        algorithm_id=context.algorithm(),
        measurements=[_volume(brain_volume_ml, method=None)],
    )
