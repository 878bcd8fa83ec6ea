"""Choose the FLAIR, T1 and T2 series of an MR study with versioned, site-editable rules.

The rules live in ``series_rules.yaml`` beside this module (its header documents the format);
a site overrides them with its own file (``MSLESION_SERIES_RULES``). Every series gets one
decision line saying what it was taken for or why it was rejected. Those lines go to the job
log, so they name series only by number, description and UID, never by patient.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from mslesion.services.config import get_settings
from mslesion.services.dicom.errors import DicomInputError, SeriesRulesError, series_label
from mslesion.services.dicom.reader import (
    Series,
    SeriesVolume,
    Study,
    load_series_volume,
    series_problem,
    stack_problem,
    uid_label,
)

SHIPPED_RULES = Path(__file__).with_name("series_rules.yaml")
DEFAULT_REQUIRED_ROLES = ("flair", "t1")

Parameter = Literal["echo_time", "inversion_time", "repetition_time"]

_NON_TOKEN = re.compile(r"[^a-z0-9+*]+")


# --------------------------------------------------------------------------- rules model


class _Strict(BaseModel):
    # A misspelt key in a site's override must fail loudly, not be silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(_Strict):
    """A closed interval of an acquisition parameter in ms; an absent bound is open."""

    min: float | None = None
    max: float | None = None

    def contains(self, value: float) -> bool:
        """True if ``value`` lies within the bounds."""
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def __str__(self) -> str:
        if self.min is not None and self.max is not None:
            return f"{self.min:g}–{self.max:g} ms"
        return f"≥ {self.min:g} ms" if self.min is not None else f"≤ {self.max:g} ms"


# DICOM code strings compare upper case; a site's rules file may be written in any case.
Code = Annotated[str, AfterValidator(lambda value: value.strip().upper())]


class Accept(_Strict):
    """Which series can be images for segmentation at all."""

    modalities: list[Code] = ["MR"]
    sop_class_uids: list[str]
    min_slices: int = Field(default=10, ge=2)


class Exclusion(_Strict):
    """Rejects a series when a name pattern, an ImageType or a ScanningSequence value matches."""

    reason: str
    names: list[re.Pattern[str]] = []
    image_type: list[Code] = []
    scanning_sequence: list[Code] = []


class Signature(_Strict):
    """Acquisition parameters that identify a role when no name pattern matches."""

    scanning_sequence: list[Code] = []
    mr_acquisition_type: Code | None = None
    echo_time: Range | None = None
    inversion_time: Range | None = None
    repetition_time: Range | None = None


class RoleRule(_Strict):
    """How one role (flair, t1, t2) is recognised."""

    names: list[re.Pattern[str]]
    veto_names: list[re.Pattern[str]] = []
    forbid_scanning_sequence: list[Code] = []
    echo: Literal["longest", "shortest"] = "longest"
    limits: dict[Parameter, Range] = {}
    signature: Signature | None = None


class SeriesRules(_Strict):
    """The whole rules file (see ``series_rules.yaml``)."""

    version: str
    accept: Accept
    exclude: list[Exclusion] = []
    roles: dict[str, RoleRule] = Field(min_length=1)
    contrast_names: list[re.Pattern[str]] = []

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: object) -> str:
        # YAML reads `version: 1.0` as a float; the version is a label, keep it as text.
        return str(value)


def load_rules(path: Path | None = None) -> SeriesRules:
    """Read and validate a rules file: ``path``, else the site's, else the shipped one."""
    if path is None:
        path = get_settings().series_rules or SHIPPED_RULES
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SeriesRulesError(f"{path}: unreadable series rules ({exc})") from exc
    if not isinstance(raw, dict):
        raise SeriesRulesError(f"{path}: series rules must be a YAML mapping")
    try:
        return SeriesRules.model_validate(raw)
    except ValidationError as exc:
        raise SeriesRulesError(f"{path}: invalid series rules: {exc}") from exc


# --------------------------------------------------------------------------- classification


@dataclass(frozen=True)
class Decision:
    """What one series qualifies for: a role, or None with the reason it was rejected."""

    series: Series
    role: str | None
    reason: str
    echo_time: float | None = None  # echo to load from a multi-echo series


def normalised_names(series: Series, *, use_protocol_name: bool = True) -> str:
    """The text that name patterns are searched in (see ``series_rules.yaml``)."""
    names = [
        series.description,
        series.protocol_name if use_protocol_name else "",
        series.sequence_name,
    ]
    return " " + " ".join(_NON_TOKEN.sub(" ", n.lower()).strip() for n in names if n) + " "


def _first_match(patterns: Sequence[re.Pattern[str]], text: str) -> str | None:
    return next((p.pattern for p in patterns if p.search(text)), None)


def _joined(values: Sequence[str]) -> str:
    return "\\".join(values)


def _exclusion(series: Series, rules: SeriesRules, text: str) -> str | None:
    for rule in rules.exclude:
        if any(v in series.image_type for v in rule.image_type):
            return f"{rule.reason} (ImageType {_joined(series.image_type)})"
        if any(v in series.scanning_sequence for v in rule.scanning_sequence):
            return f"{rule.reason} (ScanningSequence {_joined(series.scanning_sequence)})"
        pattern = _first_match(rule.names, text)
        if pattern:
            return f"{rule.reason} (name matches '{pattern}')"
    return None


def _rejection(series: Series, rules: SeriesRules, text: str) -> str | None:
    """Why a series is no candidate for any role, or None."""
    if series.modality not in rules.accept.modalities:
        return f"modality {series.modality or 'missing'} is not {'/'.join(rules.accept.modalities)}"
    if series.sop_class_uid not in rules.accept.sop_class_uids:
        return f"SOP class {uid_label(series.sop_class_uid)} is not an accepted image class"
    excluded = _exclusion(series, rules, text)
    if excluded:
        return excluded
    if series.n_frames < rules.accept.min_slices:
        return f"only {series.n_frames} image(s), fewer than {rules.accept.min_slices} slices"
    return series_problem(series)


def _signature_matches(series: Series, signature: Signature) -> bool:
    if not set(signature.scanning_sequence) <= set(series.scanning_sequence):
        return False
    wanted = signature.mr_acquisition_type
    if wanted is not None and series.mr_acquisition_type != wanted:
        return False
    for name in ("echo_time", "inversion_time", "repetition_time"):
        bounds: Range | None = getattr(signature, name)
        value: float | None = getattr(series, name)
        if bounds is not None and (value is None or not bounds.contains(value)):
            return False
    return True


def _echo(series: Series, rule: RoleRule) -> float | None:
    if len(series.echo_times) > 1:
        return max(series.echo_times) if rule.echo == "longest" else min(series.echo_times)
    return series.echo_time


def _match_role(series: Series, role: str, rule: RoleRule, text: str) -> Decision | None:
    """The series as a ``role`` candidate, a rejection naming the failed check, or None."""
    pattern = _first_match(rule.names, text)
    if pattern:
        how = f"name matches '{pattern}'"
        veto = _first_match(rule.veto_names, text)
        if veto:
            return Decision(series, None, f"name matches {role} ('{pattern}') but also '{veto}'")
    elif rule.signature is not None and _signature_matches(series, rule.signature):
        how = f"acquisition parameters match the {role} signature"
    else:
        return None
    forbidden = [v for v in rule.forbid_scanning_sequence if v in series.scanning_sequence]
    if forbidden:
        return Decision(series, None, f"{how}, but {role} excludes ScanningSequence {forbidden[0]}")
    echo = _echo(series, rule)
    values = {
        "echo_time": echo,
        "inversion_time": series.inversion_time,
        "repetition_time": series.repetition_time,
    }
    for parameter, bounds in rule.limits.items():
        value = values[parameter]
        if value is not None and not bounds.contains(value):
            name = parameter.replace("_", " ")
            return Decision(
                series, None, f"{how}, but {name} {value:g} ms is outside {bounds} for {role}"
            )
    multi = len(series.echo_times) > 1
    return Decision(series, role, how, echo if multi else None)


def classify_series(
    series: Series, rules: SeriesRules, *, use_protocol_name: bool = True
) -> Decision:
    """Decide which role, if any, ``series`` qualifies for under ``rules``."""
    text = normalised_names(series, use_protocol_name=use_protocol_name)
    rejection = _rejection(series, rules, text)
    if rejection:
        return Decision(series, None, rejection)
    misses: list[str] = []
    for role, rule in rules.roles.items():
        decision = _match_role(series, role, rule, text)
        if decision is not None and decision.role is not None:
            return decision
        if decision is not None:
            misses.append(decision.reason)
    roles = "/".join(r.upper() for r in rules.roles)
    return Decision(
        series, None, "; ".join(misses) or f"name and parameters match no role ({roles})"
    )


def _with_geometry(decision: Decision) -> Decision:
    """``decision``, or a rejection when its slices (of its echo) cannot form one volume.

    From the headers alone: a study whose only FLAIR cannot be a volume is refused here,
    before anything is decoded or computed, and another candidate can take its place. A
    summary without headers (built by hand, not read from files) has no geometry to judge.
    """
    if decision.role is None or not decision.series.headers:
        return decision
    problem = stack_problem(decision.series, decision.echo_time)
    if problem is None:
        return decision
    role = decision.role.upper()
    return Decision(
        decision.series, None, f"{decision.reason}, but it cannot be a {role} volume: {problem}"
    )


# --------------------------------------------------------------------------- selection

_PREFERENCES = (
    "pre-contrast",
    "3D acquisition",
    "thinner slices",
    "more slices",
    "later series number",
)


@dataclass(frozen=True)
class Selection:
    """The series chosen per role, with one decision line per series of the study."""

    series: dict[str, Series]
    echo_times: dict[str, float]  # only for roles filled from a multi-echo series
    decisions: list[str]
    rules_version: str

    def load(self, role: str) -> SeriesVolume:
        """Assemble the series chosen for ``role`` (the right echo of a multi-echo series)."""
        return load_series_volume(self.series[role], echo_time=self.echo_times.get(role))


def _post_contrast(series: Series, rules: SeriesRules) -> bool:
    return (
        bool(series.contrast_agent)
        or _first_match(rules.contrast_names, normalised_names(series)) is not None
    )


def _rank(series: Series, rules: SeriesRules) -> tuple[bool, bool, float, int, int]:
    thickness = series.slice_thickness if series.slice_thickness else math.inf
    return (
        not _post_contrast(series, rules),
        series.is_3d,
        -thickness,
        series.n_frames,
        series.series_number or 0,
    )


def _label(series: Series) -> str:
    return series_label(series.series_number, series.description, series.series_uid)


def _describe(series: Series) -> str:
    thickness = (
        f"{series.slice_thickness:g} mm slices"
        if series.slice_thickness
        else "slice thickness unknown"
    )
    kind = series.mr_acquisition_type or "2D/3D unknown"
    return f"{kind}, {thickness}, {series.n_frames} images"


def _line(decision: Decision, chosen: dict[str, Series], rules: SeriesRules) -> str:
    series = decision.series
    if decision.role is None:
        return f"{_label(series)}: rejected — {decision.reason}"
    role = decision.role
    echo = f", echo TE {decision.echo_time:g} ms" if decision.echo_time is not None else ""
    winner = chosen[role]
    if winner is series:
        details = f"{decision.reason}; {_describe(series)}{echo}"
        return f"{_label(series)}: selected as {role.upper()} — {details}"
    ours, theirs = _rank(series, rules), _rank(winner, rules)
    reason = (
        next(p for p, a, b in zip(_PREFERENCES, theirs, ours, strict=True) if a != b)
        if ours != theirs
        else "first in study order"
    )
    return (
        f"{_label(series)}: {role.upper()} candidate not selected — series "
        f"{winner.series_number} preferred ({reason}); {_describe(series)}"
    )


def _shared_protocol_names(study: Study) -> set[str]:
    """ProtocolNames that every series carries (GE writes the exam protocol there)."""
    if len(study.series) < 2:
        return set()
    counts = Counter(s.protocol_name for s in study.series if s.protocol_name)
    return {name for name, n in counts.items() if n == len(study.series)}


def select_series(
    study: Study,
    *,
    required: Sequence[str] = DEFAULT_REQUIRED_ROLES,
    rules: SeriesRules | None = None,
) -> Selection:
    """Pick one series per role of ``rules`` (FLAIR, T1, T2) from ``study``.

    A candidate whose slices cannot stack into one volume (judged from its headers with the
    reader's own rules) is rejected with that reason. Raises :class:`DicomInputError` when a
    ``required`` role has no candidate; its message lists every series with the reason it
    was not taken.
    """
    rules = rules or load_rules()
    unknown = [role for role in required if role not in rules.roles]
    if unknown:
        raise SeriesRulesError(f"rules version {rules.version} define no role {', '.join(unknown)}")
    shared = _shared_protocol_names(study)
    decisions = [
        _with_geometry(classify_series(s, rules, use_protocol_name=s.protocol_name not in shared))
        for s in study.series
    ]
    chosen: dict[str, Decision] = {}
    for role in rules.roles:
        candidates = [d for d in decisions if d.role == role]
        if candidates:
            chosen[role] = max(candidates, key=lambda d: _rank(d.series, rules))
    chosen_series = {role: d.series for role, d in chosen.items()}
    lines = [_line(d, chosen_series, rules) for d in decisions]
    missing = [role for role in required if role not in chosen]
    if missing:
        raise DicomInputError(
            f"no {' and no '.join(r.upper() for r in missing)} series in the study "
            f"(rules version {rules.version}); the {len(lines)} series seen:\n  - "
            + "\n  - ".join(lines)
        )
    return Selection(
        series=chosen_series,
        echo_times={r: d.echo_time for r, d in chosen.items() if d.echo_time is not None},
        decisions=lines,
        rules_version=rules.version,
    )
