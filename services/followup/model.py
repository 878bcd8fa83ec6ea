"""The follow-up reading's vocabulary: change categories, McDonald locations, the report.

One :class:`FollowUpReport` describes one comparison of a patient's current study with one
earlier (prior) study. Each lesion carries a **persistent identity** (tracking UID and a
short identifier such as ``L7``) that the next comparison reuses, so a PACS can follow one
lesion across visits.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mslesion.services.disclaimer import RESEARCH_DISCLAIMER


class ChangeCategory(StrEnum):
    """What happened to one lesion between the prior and the current study."""

    NEW = "new"  # present now, absent before
    ENLARGING = "enlarging"  # grew beyond the measurement-noise threshold
    STABLE = "stable"  # within the threshold
    SHRINKING = "shrinking"  # shrank beyond the threshold
    DISAPPEARED = "disappeared"  # present before, absent now


ACTIVE_CATEGORIES = (ChangeCategory.NEW, ChangeCategory.ENLARGING)
"""Categories that count as MRI activity (NEDA-3's MRI part)."""


class ChangeEvidence(StrEnum):
    """Why a lesion counts as new or enlarging."""

    VOLUMES = "volumes"  # the two visits' own segmentations, by the volume rules
    CHANGE_DETECTOR = "change_detector"  # the detector reading both FLAIRs side by side


class Location(StrEnum):
    """McDonald 2017 lesion locations, from template regions (approximate, see regions.py)."""

    PERIVENTRICULAR = "periventricular"
    JUXTACORTICAL = "juxtacortical"  # juxtacortical or cortical
    INFRATENTORIAL = "infratentorial"
    DEEP_WHITE_MATTER = "deep_white_matter"


class FollowUpMode(StrEnum):
    """Which earlier study a completed study is compared with."""

    OFF = "off"
    LATEST_PRIOR = "latest_prior"  # the most recent earlier analysed study
    BASELINE = "baseline"  # the earliest analysed study of the patient


class RegistrationStatus(StrEnum):
    """Outcome of bringing the prior FLAIR onto the current one."""

    REGISTERED = "registered"
    FAILED = "failed"  # no comparison made; the single-study results stand


class RegistrationSummary(BaseModel):
    """How the prior was aligned to the current study, and how well."""

    model_config = ConfigDict(extra="forbid")

    status: RegistrationStatus
    method: Literal["rigid", "affine"] = "rigid"
    reason: str = Field(description="why this method, or why it failed")
    metric: float | None = Field(default=None, description="final Mattes mutual information")
    brain_overlap_dice: float | None = Field(
        default=None, description="Dice of the two brain masks after registration"
    )
    rotation_deg: float | None = None
    translation_mm: float | None = None


class LesionChange(BaseModel):
    """One tracked lesion in a comparison."""

    model_config = ConfigDict(extra="forbid")

    tracking_uid: str
    tracking_id: str = Field(description="short persistent name, e.g. L7")
    category: ChangeCategory
    current_label: int | None = Field(
        default=None, description="rank in the current study's report (None: disappeared)"
    )
    prior_labels: list[int] = Field(
        default_factory=list, description="ranks in the prior study's report it matched"
    )
    volume_ml: float = Field(ge=0, description="volume now (0 when disappeared)")
    prior_volume_ml: float = Field(
        ge=0,
        description="volume at the prior, as the prior's own analysis measured it (0 when new)",
    )
    centroid_mm_lps: tuple[float, float, float]
    location: Location
    merged_from: list[str] = Field(
        default_factory=list, description="tracking UIDs of prior lesions merged into this one"
    )
    split_from: str | None = Field(
        default=None, description="tracking UID of the prior lesion this one split off"
    )
    change_ml: float | None = Field(
        default=None,
        description="tissue of this lesion the change detector reads as new or enlarging "
        "(None: no detector ran)",
    )
    evidence: list[ChangeEvidence] = Field(
        default_factory=list, description="what made the lesion new or enlarging"
    )


class ChangeThresholds(BaseModel):
    """The rules that decide enlarging/shrinking/new; reported with every comparison."""

    model_config = ConfigDict(extra="forbid")

    small_lesion_ml: float = 0.1
    small_growth: float = 0.5  # relative growth that counts as enlarging for small lesions
    large_growth: float = 0.25  # ... and for larger ones
    min_change_ml: float = 0.02  # absolute change below this is noise, whatever the ratio
    new_max_prior_probability: float = 0.3  # a new lesion's region was clearly normal before
    new_min_intensity_rise: float = 0.5  # mean FLAIR rise (brain-standardised) of a new lesion
    min_new_ml: float = 0.01
    # The change detector (both FLAIRs read side by side): a lesion holding at least
    # ``change_min_ml`` of tissue it reads as new or enlarging at ``change_probability`` is
    # active even when the volume rules above call it stable.
    change_probability: float = Field(default=0.9, gt=0.0, le=1.0)
    change_min_ml: float = Field(default=0.02, ge=0.0)


class FollowUpReport(BaseModel):
    """One comparison: counts, activity, every tracked lesion, how the numbers were made."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    disclaimer: str = RESEARCH_DISCLAIMER
    created: datetime
    prior_study_instance_uid: str
    prior_study_date: str | None = None
    current_study_instance_uid: str
    current_study_date: str | None = None
    model_name: str
    model_version: str
    prior_model: str = Field(
        default="", description="name and version of the model that analysed the prior"
    )
    change_detector: str = Field(
        default="", description="name and version of the change detector ('' when none ran)"
    )
    notes: list[str] = Field(
        default_factory=list,
        description="caveats a reader needs, e.g. visits analysed by different models",
    )
    registration: RegistrationSummary
    thresholds: ChangeThresholds
    counts: dict[ChangeCategory, int]
    new_or_enlarging_by_location: dict[Location, int]
    activity: bool = Field(description="MRI activity since the prior: any new or enlarging lesion")
    total_volume_ml: float
    prior_total_volume_ml: float
    lesions: list[LesionChange]
    timings_s: dict[str, float] = Field(default_factory=dict)
    seg_sop_instance_uid: str | None = None
    sr_sop_instance_uid: str | None = None
    sc_series_instance_uid: str | None = None
