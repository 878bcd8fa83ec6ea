"""DICOM JSON (PS3.18 F.2) documents the DICOMweb routes answer with."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from mslesion.api.ingesting import Outcome
from mslesion.services.store.tables import ResultFile


def instance_url(base: str, study: str, series: str, sop: str) -> str:
    """WADO-RS URL of an instance (``base`` ends with /dicom-web)."""
    return f"{base}/studies/{study}/series/{series}/instances/{sop}"


def stow_response(
    outcomes: Iterable[Outcome], base: str, study_in_url: str | None
) -> dict[str, Any]:
    """The PS3.18 10.5.3 STOW-RS response dataset, as DICOM JSON, for these outcomes.

    ReferencedSOPSequence for stored instances, FailedSOPSequence with FailureReason for the
    others.
    """
    response = Dataset()
    referenced, failed = Sequence(), Sequence()
    studies: set[str] = set()
    for outcome in outcomes:
        item = Dataset()
        # Type 1 in PS3.18; left empty (not absent) when the part was not readable DICOM.
        item.ReferencedSOPClassUID = outcome.sop_class_uid or ""
        item.ReferencedSOPInstanceUID = outcome.sop_instance_uid or ""
        if outcome.ok:
            assert outcome.study_uid and outcome.series_uid and outcome.sop_instance_uid
            item.RetrieveURL = instance_url(
                base, outcome.study_uid, outcome.series_uid, outcome.sop_instance_uid
            )
            studies.add(outcome.study_uid)
            referenced.append(item)
        else:
            item.FailureReason = outcome.status
            failed.append(item)
    study = study_in_url or (next(iter(studies)) if len(studies) == 1 else None)
    if study:
        response.RetrieveURL = f"{base}/studies/{study}"
    if referenced:
        response.ReferencedSOPSequence = referenced
    if failed:
        response.FailedSOPSequence = failed
    return response.to_json_dict()


def series_result(rows: list[ResultFile], base: str) -> dict[str, Any]:
    """QIDO-RS series-level match for one result series (all rows share its UIDs)."""
    first = rows[0]
    ds = Dataset()
    ds.StudyInstanceUID = first.study_uid
    ds.SeriesInstanceUID = first.series_uid
    ds.Modality = first.modality or ""
    ds.SeriesNumber = first.series_number
    ds.SeriesDescription = first.series_description or ""
    ds.NumberOfSeriesRelatedInstances = len(rows)
    ds.RetrieveURL = f"{base}/studies/{first.study_uid}/series/{first.series_uid}"
    return ds.to_json_dict()


def instance_result(row: ResultFile, base: str) -> dict[str, Any]:
    """QIDO-RS instance-level match for one result instance."""
    ds = Dataset()
    ds.StudyInstanceUID = row.study_uid
    ds.SeriesInstanceUID = row.series_uid
    ds.SOPClassUID = row.sop_class_uid
    ds.SOPInstanceUID = row.sop_instance_uid
    ds.Modality = row.modality or ""
    ds.SeriesNumber = row.series_number
    ds.InstanceNumber = row.part or 1  # the n-th secondary capture of a follow-up series
    assert row.study_uid and row.series_uid and row.sop_instance_uid
    ds.RetrieveURL = instance_url(base, row.study_uid, row.series_uid, row.sop_instance_uid)
    return ds.to_json_dict()


def metadata(ds: Dataset) -> dict[str, Any]:
    """WADO-RS metadata of an instance read without its pixel data."""
    return ds.to_json_dict(bulk_data_threshold=1 << 20)
