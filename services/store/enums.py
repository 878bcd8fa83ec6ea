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
    """Files a job produces."""

    SEG = "seg"
    SR = "sr"
    JSON = "json"
    PNG = "png"
    LOG = "log"


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
}
