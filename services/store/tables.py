"""SQLAlchemy 2 table models. Alembic migrations (alembic/) create them; keep both in step."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from mslesion.services.followup.model import ChangeCategory, Location
from mslesion.services.store.enums import (
    STUDY_SCOPE,
    ComparisonState,
    ComparisonTrigger,
    ForwardState,
    JobState,
    ResultKind,
    Role,
    Source,
    StudyState,
)


def utcnow() -> dt.datetime:
    """Timezone-aware now (UTC); every timestamp in the database is UTC."""
    return dt.datetime.now(dt.UTC)


def _enum(cls: type, length: int = 16) -> SAEnum:
    # Stored by value as plain strings (no native enum type): migrations stay simple.
    return SAEnum(
        cls, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e]
    )


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite hands back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        """The value converted to UTC for storage; a naive datetime is refused."""
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC) if value is not None else None

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        """The stored value as an aware UTC datetime (naive values from SQLite are UTC)."""
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


UTC = UTCDateTime()


class Base(DeclarativeBase):
    """Declarative base of all tables."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Study(Base):
    """A study being received or analysed. Holds the identifiers lesion-load history needs."""

    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(64), unique=True)
    patient_id: Mapped[str | None] = mapped_column(String(64), index=True)
    issuer_of_patient_id: Mapped[str | None] = mapped_column(String(64))  # (0010,0021)
    study_date: Mapped[dt.date | None] = mapped_column(Date)
    source: Mapped[Source] = mapped_column(_enum(Source))
    calling_aet: Mapped[str | None] = mapped_column(String(16))
    state: Mapped[StudyState] = mapped_column(_enum(StudyState), default=StudyState.RECEIVING)
    instance_count: Mapped[int] = mapped_column(Integer, default=0)
    first_received_at: Mapped[dt.datetime] = mapped_column(UTC, default=utcnow)
    last_received_at: Mapped[dt.datetime] = mapped_column(UTC, default=utcnow)

    instances: Mapped[list[Instance]] = relationship(back_populates="study")
    jobs: Mapped[list[Job]] = relationship(back_populates="study")

    __table_args__ = (Index("ix_studies_state_last", "state", "last_received_at"),)


class Instance(Base):
    """One received DICOM instance, durably written in the spool before it was acknowledged."""

    __tablename__ = "instances"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    series_uid: Mapped[str] = mapped_column(String(64))
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(512))  # relative to the spool root
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[dt.datetime] = mapped_column(UTC, default=utcnow)

    study: Mapped[Study] = relationship(back_populates="instances")


class Job(Base):
    """One analysis of one study. The single source of truth for job state."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # uuid4
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    state: Mapped[JobState] = mapped_column(_enum(JobState), default=JobState.QUEUED, index=True)
    stage: Mapped[str | None] = mapped_column(String(32))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    timings_s: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    series: Mapped[list[Any]] = mapped_column(JSON, default=list)
    provider: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(128))
    worker: Mapped[str | None] = mapped_column(String(128))
    lesion_count: Mapped[int | None] = mapped_column(Integer)
    lesion_volume_ml: Mapped[float | None] = mapped_column(Float)
    brain_volume_ml: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(UTC, default=utcnow)
    enqueued_at: Mapped[dt.datetime | None] = mapped_column(UTC)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTC)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTC)
    created_by: Mapped[str | None] = mapped_column(String(64))  # API key name or AE title

    study: Mapped[Study] = relationship(back_populates="jobs")
    # The job's own results and forwards; those of comparisons are the comparisons' (scope).
    results: Mapped[list[ResultFile]] = relationship(
        primaryjoin="and_(Job.id == ResultFile.job_id, ResultFile.scope == '')", viewonly=True
    )
    forwards: Mapped[list[Forward]] = relationship(
        primaryjoin="and_(Job.id == Forward.job_id, Forward.scope == '')", viewonly=True
    )


class ResultFile(Base):
    """A file a job or a comparison produced. DICOM results carry their UIDs for QIDO/WADO.

    A comparison's files belong to its current study's job (``job_id``) and to the comparison
    (``comparison_id``); ``scope`` repeats the comparison id, or is ``""`` for the job's own
    files, so that the unique key has no NULL in it (NULLs never collide in a unique key).
    """

    __tablename__ = "result_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    comparison_id: Mapped[str | None] = mapped_column(
        ForeignKey("comparisons.id", ondelete="CASCADE"), index=True
    )
    scope: Mapped[str] = mapped_column(String(36), default=STUDY_SCOPE, server_default="")
    part: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # n-th SC, else 0
    kind: Mapped[ResultKind] = mapped_column(_enum(ResultKind))
    path: Mapped[str] = mapped_column(String(512))  # relative to the results root
    media_type: Mapped[str] = mapped_column(String(64))
    study_uid: Mapped[str | None] = mapped_column(String(64), index=True)
    series_uid: Mapped[str | None] = mapped_column(String(64), index=True)
    sop_instance_uid: Mapped[str | None] = mapped_column(String(64), unique=True)
    sop_class_uid: Mapped[str | None] = mapped_column(String(64))
    modality: Mapped[str | None] = mapped_column(String(16))
    series_number: Mapped[int | None] = mapped_column(Integer)
    series_description: Mapped[str | None] = mapped_column(String(64))

    job: Mapped[Job] = relationship()

    __table_args__ = (
        UniqueConstraint("job_id", "scope", "kind", "part", name="uq_result_job_scope_kind_part"),
    )


class Forward(Base):
    """Delivery of a job's SEG and SR, or of a comparison's DICOM results, to one destination.

    ``scope`` is ``""`` for the job's own results, else the comparison's id (see ResultFile).
    """

    __tablename__ = "forwards"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    comparison_id: Mapped[str | None] = mapped_column(
        ForeignKey("comparisons.id", ondelete="CASCADE"), index=True
    )
    scope: Mapped[str] = mapped_column(String(36), default=STUDY_SCOPE, server_default="")
    destination: Mapped[str] = mapped_column(String(256))
    state: Mapped[ForwardState] = mapped_column(_enum(ForwardState), default=ForwardState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(UTC, default=utcnow, onupdate=utcnow)

    job: Mapped[Job] = relationship()

    __table_args__ = (
        UniqueConstraint("job_id", "scope", "destination", name="uq_forward_job_scope_dest"),
    )


class Comparison(Base):
    """One follow-up comparison: the current study's newest analysis against a prior's.

    Its own unit of work (states as for jobs); the two studies' own results never wait for it.
    """

    __tablename__ = "comparisons"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # uuid4
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    issuer: Mapped[str | None] = mapped_column(String(64))  # IssuerOfPatientID
    prior_study_id: Mapped[int] = mapped_column(
        ForeignKey("studies.id", ondelete="CASCADE"), index=True
    )
    current_study_id: Mapped[int] = mapped_column(
        ForeignKey("studies.id", ondelete="CASCADE"), index=True
    )
    prior_job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    current_job_id: Mapped[str] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), index=True
    )
    state: Mapped[ComparisonState] = mapped_column(
        _enum(ComparisonState), default=ComparisonState.QUEUED, index=True
    )
    trigger: Mapped[ComparisonTrigger] = mapped_column(_enum(ComparisonTrigger))
    registration: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # RegistrationSummary
    counts: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # category -> lesions
    activity: Mapped[bool | None] = mapped_column(Boolean)  # any new or enlarging lesion
    error: Mapped[str | None] = mapped_column(Text)
    timings_s: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(UTC, default=utcnow)
    enqueued_at: Mapped[dt.datetime | None] = mapped_column(UTC)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTC)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTC)
    created_by: Mapped[str | None] = mapped_column(String(64))  # API key name, or the node

    prior_study: Mapped[Study] = relationship(foreign_keys=[prior_study_id])
    current_study: Mapped[Study] = relationship(foreign_keys=[current_study_id])
    results: Mapped[list[ResultFile]] = relationship(viewonly=True)
    forwards: Mapped[list[Forward]] = relationship(viewonly=True)


class TrackedLesion(Base):
    """A lesion's persistent identity across a patient's visits (tracking UID, short ``L7``)."""

    __tablename__ = "tracked_lesions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    issuer: Mapped[str | None] = mapped_column(String(64))
    tracking_uid: Mapped[str] = mapped_column(String(64), unique=True)
    tracking_id: Mapped[str] = mapped_column(String(16))  # "L<number>"
    number: Mapped[int] = mapped_column(Integer)
    first_study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(UTC, default=utcnow)

    observations: Mapped[list[LesionObservation]] = relationship(back_populates="lesion")


class LesionObservation(Base):
    """A tracked lesion as one study saw it.

    With a category: the comparison's verdict for its current study; without (NULL): the
    prior study's own lesion, recorded when that study was first used as a prior (baseline).
    """

    __tablename__ = "lesion_observations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tracked_lesion_id: Mapped[int] = mapped_column(
        ForeignKey("tracked_lesions.id", ondelete="CASCADE"), index=True
    )
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    comparison_id: Mapped[str | None] = mapped_column(
        ForeignKey("comparisons.id", ondelete="CASCADE"), index=True
    )
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    rank: Mapped[int | None] = mapped_column(Integer)  # in that study's report; None: gone
    category: Mapped[ChangeCategory | None] = mapped_column(_enum(ChangeCategory))
    volume_ml: Mapped[float] = mapped_column(Float)
    location: Mapped[Location | None] = mapped_column(_enum(Location, 32))
    centroid_mm_lps: Mapped[list[Any] | None] = mapped_column(JSON)
    # When the comparison read the study through a re-analysis with another model (both
    # visits read with one model): that model ("name version") and the lesion's rank in it.
    # A later comparison that reads the study with the same model again takes identities
    # from here, so a lesion only that reading sees keeps its identity.
    reading_model: Mapped[str | None] = mapped_column(String(128))
    reading_rank: Mapped[int | None] = mapped_column(Integer)

    lesion: Mapped[TrackedLesion] = relationship(back_populates="observations")
    study: Mapped[Study] = relationship()


class ApiKey(Base):
    """An API key. Only its SHA-256 is stored; keys are 256-bit random, so no salt is needed."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[Role] = mapped_column(_enum(Role))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTC, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTC)


class AuditEvent(Base):
    """Who read or changed what, when, from where. Written for every access to patient data."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTC, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    role: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    resource: Mapped[str] = mapped_column(String(256))
    client: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[int] = mapped_column(Integer)  # HTTP status (or 0 for non-HTTP access)
