"""Instances grouped into series, each summarised by its first instance; one study per input."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydicom.dataset import Dataset

from mslesion.services.dicom.attributes import (
    attribute,
    frame_echo_time,
    n_frames,
    number,
    strings,
)
from mslesion.services.dicom.errors import DicomInputError
from mslesion.services.dicom.headers import Instance
from mslesion.services.dicom.study import Series


def refuse_mixed_studies(instances: Sequence[Instance]) -> None:
    """Refuse an input holding instances of more than one study."""
    by_study: dict[str, set[str]] = {}
    for instance in instances:
        by_study.setdefault(instance.uid("StudyInstanceUID"), set()).add(
            instance.uid("SeriesInstanceUID")
        )
    if len(by_study) > 1:
        listing = "; ".join(f"{uid} ({len(s)} series)" for uid, s in sorted(by_study.items()))
        raise DicomInputError(
            f"the input mixes {len(by_study)} studies (StudyInstanceUIDs: {listing}); "
            "send one study per job"
        )


def group_series(instances: Sequence[Instance]) -> list[Series]:
    """One :class:`Series` per SeriesInstanceUID, ordered by SeriesNumber."""
    groups: dict[str, list[Instance]] = {}
    for instance in instances:
        groups.setdefault(instance.uid("SeriesInstanceUID"), []).append(instance)
    series = [_summarise(uid, members) for uid, members in groups.items()]
    return sorted(
        series, key=lambda s: (s.series_number is None, s.series_number or 0, s.series_uid)
    )


def _scanning_sequence(header: Dataset) -> tuple[str, ...]:
    """ScanningSequence; for Enhanced MR, rebuilt from the MR Pulse Sequence module."""
    classic = strings(attribute(header, "ScanningSequence"))
    if classic:
        return classic
    echo = strings(attribute(header, "EchoPulseSequence"))
    values = [
        v
        for e in echo
        for v in {"SPIN": ["SE"], "GRADIENT": ["GR"], "BOTH": ["SE", "GR"]}.get(e, [])
    ]
    if strings(attribute(header, "InversionRecovery")) == ("YES",):
        values.append("IR")
    if strings(attribute(header, "EchoPlanarPulseSequence")) == ("YES",):
        values.append("EP")
    return tuple(values)


def _inversion_time(header: Dataset) -> float | None:
    value = attribute(header, "InversionTime")
    return number(value if value is not None else attribute(header, "InversionTimes"))


def _distinct_echo_times(headers: Iterable[Dataset]) -> tuple[float, ...]:
    times = {round(t, 3) for h in headers if (t := frame_echo_time(h)) is not None}
    return tuple(sorted(times))


def _summarise(series_uid: str, members: list[Instance]) -> Series:
    members = sorted(members, key=lambda m: (m.instance_number, m.uid("SOPInstanceUID")))
    first = members[0].header
    spacing = attribute(first, "PixelSpacing")
    series_number = number(first.get("SeriesNumber"))
    sequence_name = attribute(first, "SequenceName") or attribute(first, "PulseSequenceName") or ""
    return Series(
        series_uid=series_uid,
        description=str(first.get("SeriesDescription", "")).strip(),
        modality=str(first.get("Modality", "")).strip().upper(),
        sop_class_uid=members[0].uid("SOPClassUID"),
        series_number=int(series_number) if series_number is not None else None,
        n_instances=len(members),
        n_frames=sum(n_frames(m.header) for m in members),
        protocol_name=str(first.get("ProtocolName", "")).strip(),
        sequence_name=str(sequence_name).strip(),
        scanning_sequence=_scanning_sequence(first),
        sequence_variant=strings(attribute(first, "SequenceVariant")),
        scan_options=strings(attribute(first, "ScanOptions")),
        image_type=strings(first.get("ImageType")),
        inversion_time=_inversion_time(first),
        repetition_time=number(attribute(first, "RepetitionTime")),
        echo_time=frame_echo_time(first),
        echo_times=_distinct_echo_times(m.header for m in members),
        mr_acquisition_type=str(attribute(first, "MRAcquisitionType") or "").strip().upper(),
        slice_thickness=number(attribute(first, "SliceThickness")),
        pixel_spacing=(float(spacing[0]), float(spacing[1])) if spacing else None,
        contrast_agent=str(first.get("ContrastBolusAgent", "")).strip(),
        sop_class_uids=tuple(sorted({m.uid("SOPClassUID") for m in members})),
        transfer_syntaxes=tuple(sorted({m.transfer_syntax for m in members})),
        files=tuple(m.source for m in members),
        headers=tuple(m.header for m in members),
    )
