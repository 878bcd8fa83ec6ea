"""SQLAlchemy 2 table models. Alembic migrations (alembic/) create them; keep both in step."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
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

from mslesion.services.store.enums import (
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


def _enum(cls: type) -> SAEnum:
    # Stored by value as plain strings (no native enum type): migrations stay simple.
    return SAEnum(cls, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])


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
    results: Mapped[list[ResultFile]] = relationship(back_populates="job")
    forwards: Mapped[list[Forward]] = relationship(back_populates="job")


class ResultFile(Base):
    """A file a job produced. DICOM results carry their UIDs for QIDO/WADO."""

    __tablename__ = "result_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
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

    job: Mapped[Job] = relationship(back_populates="results")

    __table_args__ = (UniqueConstraint("job_id", "kind", name="uq_result_job_kind"),)


class Forward(Base):
    """Delivery of a job's SEG and SR to one configured destination."""

    __tablename__ = "forwards"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    destination: Mapped[str] = mapped_column(String(256))
    state: Mapped[ForwardState] = mapped_column(_enum(ForwardState), default=ForwardState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(UTC, default=utcnow, onupdate=utcnow)

    job: Mapped[Job] = relationship(back_populates="forwards")

    __table_args__ = (UniqueConstraint("job_id", "destination", name="uq_forward_job_dest"),)


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
