"""Response models of the gateway: they make the OpenAPI schema exact."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mslesion.services.followup.model import ChangeCategory, RegistrationSummary
from mslesion.services.store.enums import (
    ComparisonState,
    ComparisonTrigger,
    ForwardState,
    JobState,
    ResultKind,
    Role,
)
from mslesion.services.store.repositories.history import StudyLoad
from mslesion.services.store.repositories.lesions import TrackedLesionHistory

UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
UID_PATTERN = r"^[0-9]+(\.[0-9]+)*$"
LO_PATTERN = r"^[^\\\x00-\x1f\x7f]+$"  # DICOM LO: no backslash, no control characters
CS_PATTERN = r"^[A-Z0-9 _]+$"  # DICOM CS (e.g. Modality)


class ErrorOut(BaseModel):
    """Every error response: ``detail`` says what was wrong, in the protocol's terms."""

    detail: str | list[Any] | dict[str, Any]


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": text}
    for code, text in (
        (401, "No API key, or an unknown or revoked one"),
        (403, "The key's role may not do this"),
        (429, "Too many requests from this key (or address); retry after Retry-After seconds"),
        (503, "The database (or the audit trail) is unavailable; retry later"),
    )
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the common errors plus ``codes`` (all answer ``ErrorOut``)."""
    extra: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in codes}
    return {**ERRORS, **extra}


# --- jobs -----------------------------------------------------------------------------------


class JobSummary(BaseModel):
    """One job in a list."""

    id: str
    state: JobState
    stage: str | None
    progress: float
    attempts: int
    study_uid: str
    created_at: dt.datetime
    finished_at: dt.datetime | None
    created_by: str | None


class JobPage(BaseModel):
    """A page of jobs, newest first."""

    items: list[JobSummary]
    total: int
    limit: int
    offset: int


class LesionSummary(BaseModel):
    """What a succeeded job measured."""

    lesion_count: int
    lesion_volume_ml: float
    brain_volume_ml: float | None


class ResultLink(BaseModel):
    """A downloadable result file of a job."""

    kind: ResultKind
    media_type: str
    url: str


class ForwardOut(BaseModel):
    """Delivery of the job's SEG and SR to one destination."""

    destination: str
    state: ForwardState
    attempts: int
    last_error: str | None
    updated_at: dt.datetime


class JobDetail(JobSummary):
    """Everything known about one job."""

    enqueued_at: dt.datetime | None
    started_at: dt.datetime | None
    timings_s: dict[str, float] = Field(description="stage -> seconds")
    series: list[dict[str, Any]] = Field(description="the series chosen for each role")
    error: str | None
    provider: str | None = Field(description="ONNX Runtime provider actually used")
    model: str | None
    worker: str | None
    lesions: LesionSummary | None
    results: list[ResultLink]
    forwards: list[ForwardOut]


class ResendOut(BaseModel):
    """Failed forwards made pending again and queued."""

    job_id: str
    resent: int


# --- uploads --------------------------------------------------------------------------------


class FileFailure(BaseModel):
    """A member of an uploaded archive that was not stored."""

    file: str
    status: int = Field(description="DICOM status, e.g. 49152 (0xC000) cannot understand")
    reason: str


class CreatedJob(BaseModel):
    """A job created for a study the upload completed."""

    job_id: str
    study_uid: str


class UploadOut(BaseModel):
    """What a zip upload stored and which jobs it started."""

    stored: int
    duplicates: int
    jobs: list[CreatedJob]
    failures: list[FileFailure]


# --- patients -------------------------------------------------------------------------------


class Change(BaseModel):
    """Difference of total lesion volume to an earlier study."""

    volume_ml: float
    percent: float | None = Field(description="None when the earlier volume was 0")


class StudyLoadOut(StudyLoad):
    """One analysed study of a patient, with its change against earlier ones."""

    change_since_previous: Change | None
    change_since_first: Change | None


class LesionLoadOut(BaseModel):
    """A patient's lesion load over time, oldest study first."""

    patient_id: str
    studies: list[StudyLoadOut]


class PatientLesionsOut(BaseModel):
    """A patient's tracked lesions (by short name), each with its volume per visit."""

    patient_id: str
    lesions: list[TrackedLesionHistory]


# --- follow-up comparisons ------------------------------------------------------------------

COMPARISON_FILE_PATTERN = r"^(seg|sr|json|png|sc_[1-9][0-9]?)$"


class ComparisonRequest(BaseModel):
    """An explicit comparison (re-analysis) of two analysed studies of one patient."""

    model_config = ConfigDict(extra="forbid")

    prior_study_uid: str = Field(pattern=UID_PATTERN, max_length=64)
    current_study_uid: str = Field(pattern=UID_PATTERN, max_length=64)


class ComparisonCreated(BaseModel):
    """A comparison created and queued."""

    comparison_id: str
    state: ComparisonState
    url: str


class ComparisonFileLink(BaseModel):
    """A downloadable file of a succeeded comparison."""

    name: str = Field(description="seg, sr, json, png, or sc_<n> (n-th secondary capture)")
    kind: ResultKind
    media_type: str
    url: str


class ComparisonDetail(BaseModel):
    """Everything known about one follow-up comparison."""

    id: str
    state: ComparisonState
    trigger: ComparisonTrigger
    prior_study_uid: str
    prior_study_date: dt.date | None
    current_study_uid: str
    current_study_date: dt.date | None
    prior_job_id: str
    current_job_id: str
    attempts: int
    counts: dict[ChangeCategory, int] | None = Field(description="lesions per change category")
    activity: bool | None = Field(description="any new or enlarging lesion (None: not yet)")
    registration: RegistrationSummary | None
    error: str | None
    timings_s: dict[str, float] = Field(description="stage -> seconds")
    created_at: dt.datetime
    enqueued_at: dt.datetime | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    created_by: str | None
    results: list[ComparisonFileLink]
    forwards: list[ForwardOut]


# --- health and audit -----------------------------------------------------------------------


class LiveOut(BaseModel):
    """The process answers."""

    status: Literal["alive"] = "alive"


class CheckOut(BaseModel):
    """One readiness check."""

    ok: bool
    detail: str | None = None


class ReadyOut(BaseModel):
    """Readiness: database, broker and model."""

    status: Literal["ready", "not ready"]
    checks: dict[str, CheckOut]


class AuditEventOut(BaseModel):
    """One audit event."""

    id: int
    at: dt.datetime
    actor: str
    role: Role | None
    action: str
    resource: str
    client: str | None
    outcome: int


class AuditPage(BaseModel):
    """Audit events, newest first."""

    items: list[AuditEventOut]
    limit: int
    offset: int


# --- DICOM JSON (PS3.18 F.2) ----------------------------------------------------------------

DICOM_JSON = "application/dicom+json"

_ATTRIBUTE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["vr"],
    "properties": {
        "vr": {"type": "string", "minLength": 2, "maxLength": 2},
        "Value": {"type": "array"},
        "InlineBinary": {"type": "string"},
        "BulkDataURI": {"type": "string"},
    },
}
DATASET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A DICOM JSON data set: tag (8 hex digits) -> attribute",
    "additionalProperties": _ATTRIBUTE_SCHEMA,
}
DATASETS_SCHEMA: dict[str, Any] = {"type": "array", "items": DATASET_SCHEMA}


def dicom_json_response(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """An OpenAPI response entry whose body is DICOM JSON."""
    return {"description": description, "content": {DICOM_JSON: {"schema": schema}}}
