"""The one settings object. Environment variables prefixed ``MSLESION_`` override defaults.

Nothing is read at import time: call :func:`get_settings` where settings are needed.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MODELS_DIR = REPO_ROOT / "models" / "shipped"
DEFAULT_MODEL_NAME = "flair_t1"


class Provider(StrEnum):
    """Which ONNX Runtime execution provider to use."""

    AUTO = "auto"  # CUDA if the installed runtime offers it, else CPU
    CPU = "cpu"
    CUDA = "cuda"  # required: fail loudly when missing


class Settings(BaseSettings):
    """Runtime configuration of mslesion (see docs/CONFIGURATION.md)."""

    model_config = SettingsConfigDict(env_prefix="MSLESION_", extra="ignore")

    model_dir: Path = Field(
        default=SHIPPED_MODELS_DIR / DEFAULT_MODEL_NAME,
        description="Folder holding manifest.json and the ONNX files of the cascade.",
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
        description="DICOM UID root for the SEG/SR this node creates (end with a dot).",
    )
    manufacturer: str = Field(default="mslesion project", description="(0008,0070) of outputs")
    manufacturer_model_name: str = Field(default="mslesion", description="(0008,1090) of outputs")
    device_serial_number: str = Field(default="0001", description="(0018,1000) of outputs")
    institution_name: str | None = Field(default=None, description="(0008,0080) of outputs")
    shared_data_dir: Path = Field(
        default=REPO_ROOT.parent / "shared" / "data",
        description="Real MRI used by tests and training (never copied into the repo).",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read from the environment on first call."""
    return Settings()
