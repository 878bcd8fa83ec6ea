"""States and kinds stored in the database (string enums, stored by value)."""

from __future__ import annotations

from enum import StrEnum


class StudyState(StrEnum):
    """Where a received study stands."""

    RECEIVING = "receiving"  # instances still arriving (quiet timer running)
    COMPLETE = "complete"  # a job was created for what has arrived


class Source(StrEnum):
    """How a study reached the node."""

    DIMSE = "dimse"  # C-STORE from a PACS or modality
    STOW = "stow"  # DICOMweb STOW-RS
    UPLOAD = "upload"  # zip upload over HTTP


class JobState(StrEnum):
    """Job states: queued -> running -> succeeded | failed; running -> queued on a retry."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ForwardState(StrEnum):
    """Delivery of one job's SEG and SR to one destination."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # retries exhausted; can be re-sent through the API


class ResultKind(StrEnum):
    """Files a job produces, and the files of a comparison (``followup_*``)."""

    SEG = "seg"
    SR = "sr"
    JSON = "json"
    PNG = "png"
    LOG = "log"
    FOLLOWUP_SEG = "followup_seg"
    FOLLOWUP_SR = "followup_sr"
    FOLLOWUP_JSON = "followup_json"
    FOLLOWUP_PNG = "followup_png"
    FOLLOWUP_SC = "followup_sc"  # secondary captures: one row per instance (``part`` 1, 2, ...)


STUDY_RESULT_KINDS = (
    ResultKind.SEG,
    ResultKind.SR,
    ResultKind.JSON,
    ResultKind.PNG,
    ResultKind.LOG,
)
"""The files of a job's own analysis (one each)."""

FOLLOWUP_RESULT_KINDS = (
    ResultKind.FOLLOWUP_SEG,
    ResultKind.FOLLOWUP_SR,
    ResultKind.FOLLOWUP_JSON,
    ResultKind.FOLLOWUP_PNG,
    ResultKind.FOLLOWUP_SC,
)
"""The files of a follow-up comparison (secondary captures: one or more)."""


class ComparisonState(StrEnum):
    """Comparison states, as for jobs: queued -> running -> succeeded | failed."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # e.g. the prior could not be registered; the studies' results stand


class ComparisonTrigger(StrEnum):
    """Why a comparison exists."""

    AUTO = "auto"  # planned when the current study's job succeeded (MSLESION_FOLLOWUP_MODE)
    MANUAL = "manual"  # requested explicitly (API or CLI): a re-analysis


class Role(StrEnum):
    """API roles. Admin may do everything."""

    UPLOADER = "uploader"  # send studies, follow the jobs it sent
    READER = "reader"  # read results and patient history
    ADMIN = "admin"  # manage keys, re-send results, everything else


RESULT_MEDIA_TYPES: dict[ResultKind, str] = {
    ResultKind.SEG: "application/dicom",
    ResultKind.SR: "application/dicom",
    ResultKind.JSON: "application/json",
    ResultKind.PNG: "image/png",
    ResultKind.LOG: "text/plain",
    ResultKind.FOLLOWUP_SEG: "application/dicom",
    ResultKind.FOLLOWUP_SR: "application/dicom",
    ResultKind.FOLLOWUP_JSON: "application/json",
    ResultKind.FOLLOWUP_PNG: "image/png",
    ResultKind.FOLLOWUP_SC: "application/dicom",
}

DICOM_RESULT_KINDS = frozenset(
    {
        ResultKind.SEG,
        ResultKind.SR,
        ResultKind.FOLLOWUP_SEG,
        ResultKind.FOLLOWUP_SR,
        ResultKind.FOLLOWUP_SC,
    }
)
"""Result kinds that are DICOM instances: served by QIDO/WADO-RS and forwarded."""

STUDY_SCOPE = ""
"""``scope`` of a job's own result files and forwards; a comparison's carry its id."""
