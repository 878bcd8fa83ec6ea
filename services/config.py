"""The one settings object. Environment variables prefixed ``MSLESION_`` override defaults.

Nothing is read at import time: call :func:`get_settings` where settings are needed.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mslesion.services.errors import ConfigError
from mslesion.services.followup.model import ChangeThresholds, FollowUpMode

# The installed `mslesion` package folder (not resolved: in a checkout mslesion/services links
# to services/, and the package's own view of its files is what a wheel has too).
PACKAGE_ROOT = Path(__file__).absolute().parent.parent
SHIPPED_MODELS_DIR = PACKAGE_ROOT / "models" / "shipped"
SHIPPED_CHANGE_DETECTOR = PACKAGE_ROOT / "models" / "change"
MIGRATIONS_DIR = PACKAGE_ROOT / "migrations"
# A source checkout: the folder that holds pyproject.toml (for the default shared-data path).
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_NAME = "flair_t1"

JOB_SOFT_TIME_LIMIT_S = 1800
"""A job still running after this long gets SoftTimeLimitExceeded (then retried/failed).
A real study takes well under a minute on CPU, so only a hung run reaches it."""
JOB_TIME_LIMIT_S = JOB_SOFT_TIME_LIMIT_S + 300
"""Hard limit: the worker process is killed (the message is redelivered). ``job_lease_s``
must exceed it (a validator of :class:`Settings` enforces this)."""

# PS3.5 9.1: dot-separated numbers without leading zeros; a root ends with its dot and leaves
# at least 10 of the 64 characters to the generated suffix (pydicom's generate_uid).
_UID_ROOT = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*\.$")
UID_ROOT_MAX_LENGTH = 54


class Provider(StrEnum):
    """Which ONNX Runtime execution provider to use."""

    AUTO = "auto"  # CUDA if the installed runtime offers it, else CPU
    CPU = "cpu"
    CUDA = "cuda"  # required: fail loudly when missing


class Settings(BaseSettings):
    """Runtime configuration of mslesion (see docs/CONFIGURATION.md)."""

    model_config = SettingsConfigDict(env_prefix="MSLESION_", extra="ignore")

    model_dir: Path = Field(
        default=SHIPPED_MODELS_DIR,
        description=(
            "A model folder (manifest.json and ONNX files) or a folder of model folders: each "
            "study is analysed by the richest model whose modalities it holds."
        ),
    )
    provider: Provider = Field(default=Provider.AUTO, description="ONNX Runtime provider.")
    cuda_device_id: int = Field(default=0, ge=0, description="GPU index for the CUDA provider.")
    intra_op_threads: int = Field(
        default=0, ge=0, description="ONNX Runtime intra-op threads (0: one per core)."
    )
    tile_size: int = Field(
        default=40, ge=8, le=256, description="Edge of the output tile of dense inference, voxels."
    )
    tile_batch: int = Field(default=1, ge=1, le=64, description="Tiles per ONNX Runtime call.")
    series_rules: Path | None = Field(
        default=None,
        description="Site override of the series-selection rules (YAML); default: shipped rules.",
    )
    uid_root: str = Field(
        default="1.2.826.0.1.3680043.8.498.",  # pydicom's root: sites set their own
        description="DICOM UID root for the SEG/SR this node creates: dot-separated numbers "
        f"without leading zeros, ending with a dot, at most {UID_ROOT_MAX_LENGTH} characters.",
    )
    manufacturer: str = Field(default="mslesion project", description="(0008,0070) of outputs")
    manufacturer_model_name: str = Field(default="mslesion", description="(0008,1090) of outputs")
    device_serial_number: str = Field(default="0001", description="(0018,1000) of outputs")
    institution_name: str | None = Field(default=None, description="(0008,0080) of outputs")
    shared_data_dir: Path = Field(
        default=REPO_ROOT.parent / "shared" / "data",
        description="Real MRI used by tests and training (never copied into the repo).",
    )

    # --- the PACS node: storage -------------------------------------------------------------
    data_dir: Path = Field(
        default=Path("mslesion-data"),
        description="Root of the node's files: spool/ (received DICOM), results/ and the "
        "embedded SQLite database when database_url is not set.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL, e.g. postgresql+psycopg://mslesion@db/mslesion. "
        "Default: SQLite file data_dir/mslesion.db (one-machine mode).",
    )
    # --- queue ---------------------------------------------------------------------------------
    broker_url: str | None = Field(
        default=None,
        description="Celery broker, e.g. redis://redis:6379/0. Default: none, jobs run in an "
        "in-process worker thread (one-machine mode).",
    )
    job_max_retries: int = Field(default=3, ge=0, description="Retries of transient job errors.")
    job_retry_backoff_s: float = Field(
        default=10.0, gt=0, description="First retry delay; doubles on each retry."
    )
    requeue_after_s: float = Field(
        default=600.0,
        gt=0,
        description="A job still 'queued' this long after it was enqueued is enqueued again "
        "(the database, not the broker, is the source of truth).",
    )
    job_lease_s: float = Field(
        default=2400.0,
        gt=0,
        description="A job still 'running' this long after it started is presumed lost (its "
        "worker died without the message coming back) and is offered again. Must exceed the "
        f"worker's hard time limit (JOB_TIME_LIMIT_S, {JOB_TIME_LIMIT_S} s), so that no job "
        "still running is ever started twice.",
    )
    # --- DICOM listener ------------------------------------------------------------------------
    ae_title: str = Field(default="MSLESION", max_length=16, description="The node's AE title.")
    dicom_host: str = Field(default="0.0.0.0", description="Listener bind address.")
    dicom_port: int = Field(default=11112, ge=0, le=65535, description="Listener port.")
    allowed_calling_aets: list[str] = Field(
        default_factory=list,
        description="Calling AE titles allowed to associate (JSON list). Empty: any AE.",
    )
    max_associations: int = Field(
        default=10, ge=1, description="Concurrent DICOM associations the listener accepts."
    )
    study_quiet_s: float = Field(
        default=60.0,
        ge=0,
        description="A study is complete after this many seconds without a new instance.",
    )
    dicom_tls_cert: Path | None = Field(
        default=None,
        description="PEM certificate (chain) of the listener. With dicom_tls_key set, the "
        "listener speaks DICOM over TLS only (PS3.15 B.9, TLS 1.2 or later).",
    )
    dicom_tls_key: Path | None = Field(
        default=None, description="PEM private key of dicom_tls_cert."
    )
    dicom_tls_ca: Path | None = Field(
        default=None,
        description="PEM bundle of the CAs whose client certificates the listener accepts.",
    )
    dicom_tls_require_client_cert: bool = Field(
        default=False,
        description="Refuse DICOM TLS clients without a certificate signed by dicom_tls_ca.",
    )
    # --- HTTP gateway --------------------------------------------------------------------------
    http_host: str = Field(default="127.0.0.1", description="Gateway bind address.")
    http_port: int = Field(default=8000, ge=0, le=65535, description="Gateway port.")
    max_upload_bytes: int = Field(
        default=2 * 1024**3, ge=1, description="Largest STOW-RS or zip upload body (bytes)."
    )
    max_zip_members: int = Field(
        default=100_000, ge=1, description="Most members a zip (upload or study archive) may have."
    )
    max_zip_expanded_bytes: int = Field(
        default=4 * 1024**3,
        ge=1,
        description="Most bytes a zip (upload or study archive) may expand to (zip-bomb limit).",
    )
    max_zip_member_bytes: int = Field(
        default=2 * 1024**3, ge=1, description="Most bytes one zip member may expand to."
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS (JSON list). Empty: closed."
    )
    http_tls_cert: Path | None = Field(
        default=None,
        description="PEM certificate (chain) of the gateway. With http_tls_key set, the gateway "
        "serves HTTPS only. Alternative: TLS at a reverse proxy (docs/SECURITY.md).",
    )
    http_tls_key: Path | None = Field(default=None, description="PEM private key of http_tls_cert.")
    rate_limit_per_minute: int = Field(
        default=600,
        ge=0,
        description="Requests per minute per API key (per client address without a valid key), "
        "in bursts of up to the same number; 0 turns the limit off.",
    )
    bootstrap_admin_key: SecretStr | None = Field(
        default=None,
        description="If set, an admin API key with this value is ensured at start (deployments).",
    )
    # --- forwarding ----------------------------------------------------------------------------
    forward_destinations: list[str] = Field(
        default_factory=list,
        description='Where SEG and SR go (JSON list): "dicom://AET@host:port" (C-STORE) or '
        '"http(s)://host/dicom-web" (STOW-RS).',
    )
    forward_max_retries: int = Field(default=5, ge=0, description="Retries per destination.")
    forward_retry_backoff_s: float = Field(
        default=30.0, gt=0, description="First forwarding retry delay; doubles on each retry."
    )
    forward_calling_aet: str = Field(
        default="MSLESION", max_length=16, description="Calling AE title used when forwarding."
    )
    # --- follow-up reading ---------------------------------------------------------------------
    followup_mode: FollowUpMode = Field(
        default=FollowUpMode.LATEST_PRIOR,
        description="Which earlier study a completed study is compared with: 'off', "
        "'latest_prior' (the most recent earlier analysed study of the patient) or 'baseline' "
        "(the patient's earliest analysed study).",
    )
    followup_thresholds: ChangeThresholds = Field(
        default_factory=ChangeThresholds,
        description="The rules that make a lesion new, enlarging or shrinking (JSON object of "
        "ChangeThresholds fields; unset fields keep their defaults).",
    )
    followup_change_detector: Path | None = Field(
        default=SHIPPED_CHANGE_DETECTOR,
        description="Model folder of the change detector, which reads new and enlarging lesion "
        "tissue from both FLAIRs side by side (default: the shipped one); 'none' reads change "
        "from the two visits' lesion volumes only.",
    )

    @field_validator("followup_change_detector", mode="before")
    @classmethod
    def _none_turns_detection_off(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in {"", "none", "off"}:
            return None
        return value

    @field_validator("uid_root")
    @classmethod
    def _uid_root_is_a_root(cls, value: str) -> str:
        if len(value) > UID_ROOT_MAX_LENGTH or not _UID_ROOT.fullmatch(value):
            raise ValueError(
                f"uid_root {value!r} is not a UID root: dot-separated numbers without leading "
                f"zeros, ending with a dot, at most {UID_ROOT_MAX_LENGTH} characters "
                "(e.g. '1.2.826.0.1.3680043.8.498.')"
            )
        return value

    @model_validator(mode="after")
    def _lease_outlasts_hard_time_limit(self) -> Self:
        if self.job_lease_s <= JOB_TIME_LIMIT_S:
            raise ValueError(
                f"job_lease_s (MSLESION_JOB_LEASE_S, {self.job_lease_s:g} s) must exceed the "
                f"worker's hard time limit ({JOB_TIME_LIMIT_S} s): with a shorter lease a job "
                "still running would be presumed lost and started a second time"
            )
        return self

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to the embedded SQLite file under data_dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'mslesion.db').resolve()}"

    @property
    def spool_dir(self) -> Path:
        """Received DICOM instances, by study/series/instance UID."""
        return self.data_dir / "spool"

    @property
    def results_dir(self) -> Path:
        """Result files, by job id (never by user input)."""
        return self.data_dir / "results"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read from the environment on first call.

    Raises :class:`ConfigError` naming each setting that breaks a rule (never its value:
    some are secrets).
    """
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(describe_invalid_settings(exc)) from exc


def describe_invalid_settings(exc: ValidationError) -> str:
    """One line for an invalid environment: each offending variable and its rule."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        message = error["msg"].removeprefix("Value error, ")
        name = ".".join(str(part) for part in error["loc"])
        problems.append(f"MSLESION_{name.upper()}: {message}" if name else message)
    return "invalid settings: " + "; ".join(problems)
