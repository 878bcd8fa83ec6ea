"""Persistent lesion identities and what each study saw of each lesion.

A lesion keeps its tracking UID and short name (``L7``) across a patient's visits. The
identities of a prior study's lesions, by rank in that study's report, come from here:

1. the observations recorded for the prior when it was itself the *current* study of a
   succeeded comparison (of the same analysis of it): the lesions as the last visit named them;
2. else the prior's own (baseline) observations, recorded when it was first used as a prior;
3. else nothing: the caller takes the prior report's tracking UIDs (:func:`identities_from_report`)
   and numbers past the highest ``L<n>`` the patient has (:func:`max_lesion_number`).

A comparison that reads a visit through a re-analysis with another model (both visits read
with one model) records the current lesions' ranks in that reading too; a later comparison
that re-analyses the same study with the same model takes its identities from there
(:func:`reading_identities`), so a lesion only that reading sees keeps its identity.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from mslesion.services.followup.model import ChangeCategory, FollowUpReport, Location
from mslesion.services.store.enums import ComparisonState
from mslesion.services.store.tables import Comparison, LesionObservation, Study, TrackedLesion

_SHORT_ID = re.compile(r"^L([1-9][0-9]*)$")


@dataclass(frozen=True)
class Identity:
    """A lesion's tracking UID and short name."""

    tracking_uid: str
    tracking_id: str


@dataclass(frozen=True)
class Reading:
    """The re-analysis a comparison read its current study through.

    ``model``: "name version" of the model both visits were read with; ``ranks``: each lesion
    of the comparison's report (same order) by its rank in that re-analysis (None: gone).
    """

    model: str
    ranks: Sequence[int | None]


@dataclass(frozen=True)
class ReadIdentity:
    """A lesion's identity as a re-analysis of a study named it, and its volume there."""

    identity: Identity
    volume_ml: float


@dataclass(frozen=True)
class PriorLesion:
    """One lesion of the prior study's own report: its volume and centroid."""

    volume_ml: float
    centroid_mm_lps: tuple[float, float, float] | None = None


def short_id(number: int) -> str:
    """The short name of the ``number``-th lesion of a patient: ``L<number>``."""
    return f"L{number}"


def number_of(tracking_id: str) -> int | None:
    """The number in a short name ``L<n>``, or None for another form."""
    match = _SHORT_ID.fullmatch(tracking_id)
    return int(match.group(1)) if match else None


# --- identities ---------------------------------------------------------------------------------


def prior_identities(
    session: Session, prior_study_id: int, prior_job_id: str
) -> dict[int, Identity]:
    """Identities of the prior analysis's lesions by rank, as recorded; empty when none are.

    Only observations of that very analysis (``prior_job_id``) count: ranks of another
    analysis of the study name other lesions.
    """
    as_current = session.scalar(
        select(Comparison.id)
        .where(
            Comparison.current_study_id == prior_study_id,
            Comparison.current_job_id == prior_job_id,
            Comparison.state == ComparisonState.SUCCEEDED,
        )
        .order_by(Comparison.finished_at.desc())
        .limit(1)
    )
    query = (
        select(LesionObservation.rank, TrackedLesion.tracking_uid, TrackedLesion.tracking_id)
        .join(TrackedLesion)
        .where(
            LesionObservation.study_id == prior_study_id,
            LesionObservation.job_id == prior_job_id,
            LesionObservation.rank.is_not(None),
        )
    )
    if as_current is not None:
        query = query.where(
            LesionObservation.comparison_id == as_current,
            LesionObservation.category.is_not(None),
        )
    else:
        query = query.where(LesionObservation.category.is_(None))
    found: dict[int, Identity] = {}
    for rank, uid, tid in session.execute(query.order_by(LesionObservation.id)):
        if rank is not None:  # filtered above; the type does not know
            found.setdefault(rank, Identity(uid, tid))
    return found


def reading_identities(
    session: Session, study_id: int, job_id: str, model: str
) -> dict[int, ReadIdentity]:
    """Identities by rank in the re-analysis of a study with ``model``, as last recorded.

    From the newest succeeded comparison that read that analysis (``job_id``) of the study,
    as its current study, through a re-analysis with ``model``; empty when none did. The
    caller checks that its own re-analysis is the same reading (the volumes match): ranks of
    another reading name other lesions.
    """
    latest = session.scalar(
        select(Comparison.id)
        .join(LesionObservation, LesionObservation.comparison_id == Comparison.id)
        .where(
            Comparison.current_study_id == study_id,
            Comparison.current_job_id == job_id,
            Comparison.state == ComparisonState.SUCCEEDED,
            LesionObservation.study_id == study_id,
            LesionObservation.reading_model == model,
        )
        .order_by(Comparison.finished_at.desc())
        .limit(1)
    )
    if latest is None:
        return {}
    query = (
        select(
            LesionObservation.reading_rank,
            LesionObservation.volume_ml,
            TrackedLesion.tracking_uid,
            TrackedLesion.tracking_id,
        )
        .join(TrackedLesion)
        .where(
            LesionObservation.comparison_id == latest,
            LesionObservation.study_id == study_id,
            LesionObservation.reading_rank.is_not(None),
        )
        .order_by(LesionObservation.id)
    )
    found: dict[int, ReadIdentity] = {}
    for rank, volume, uid, tid in session.execute(query):
        if rank is not None:  # filtered above; the type does not know
            found.setdefault(rank, ReadIdentity(Identity(uid, tid), volume))
    return found


def max_lesion_number(session: Session, patient_id: str, issuer: str | None) -> int:
    """The highest ``L<n>`` number given to a lesion of this patient (0 when none)."""
    value = session.scalar(
        select(func.max(TrackedLesion.number)).where(
            TrackedLesion.patient_id == patient_id,
            TrackedLesion.issuer.is_not_distinct_from(issuer),
        )
    )
    return int(value or 0)


def identities_from_report(
    ranked_uids: Sequence[tuple[int, str | None]], used_max: int, new_uid: Callable[[], str]
) -> tuple[dict[int, Identity], int]:
    """Identities for a prior the database knows nothing of, from its own report.

    ``ranked_uids``: (rank, tracking UID or None) of each lesion of the report. A patient
    without named lesions gets ``L<rank>``; otherwise names continue after ``used_max``, in
    rank order, so that no two lesions of one patient share a name. Missing UIDs are made
    with ``new_uid``. Returns the identities and the next free number.
    """
    by_rank: dict[int, Identity] = {}
    next_number = used_max + 1
    for rank, uid in sorted(ranked_uids):
        if used_max == 0:
            number = rank
        else:
            number, next_number = next_number, next_number + 1
        by_rank[rank] = Identity(uid or new_uid(), short_id(number))
    highest = max((number_of(i.tracking_id) or 0 for i in by_rank.values()), default=0)
    return by_rank, max(next_number, highest + 1, used_max + 1)


# --- recording a comparison's lesions -----------------------------------------------------------


def record_comparison(
    session: Session,
    comparison: Comparison,
    report: FollowUpReport,
    prior_ids: Mapping[int, Identity],
    prior_lesions: Mapping[int, PriorLesion],
    reading: Reading | None = None,
) -> None:
    """Record what a succeeded comparison saw: tracked lesions and observations.

    Each lesion of the report gets an observation of the current study (with its category;
    disappeared ones with volume 0 and no rank). When the prior analysis has no observations
    yet, its own lesions are recorded too, without a category (its baseline), under the
    identities the comparison was given (``prior_ids``). ``reading``: the re-analysis the
    comparison read the current study through, whose ranks are kept beside the own ones
    (:func:`reading_identities`). Idempotent per comparison.
    """
    if reading is not None and len(reading.ranks) != len(report.lesions):
        raise ValueError(
            f"the reading ranks {len(reading.ranks)} lesions, the report {len(report.lesions)}"
        )
    session.execute(
        delete(LesionObservation).where(LesionObservation.comparison_id == comparison.id)
    )
    session.flush()
    has_baseline = session.scalar(
        select(LesionObservation.id)
        .where(
            LesionObservation.study_id == comparison.prior_study_id,
            LesionObservation.job_id == comparison.prior_job_id,
        )
        .limit(1)
    )
    tracker = _Tracker(session, comparison.patient_id, comparison.issuer)
    prior_uids = {i.tracking_uid for i in prior_ids.values()}
    location_of_prior: dict[int, Location] = {}
    for change in report.lesions:
        for rank in change.prior_labels:
            location_of_prior.setdefault(rank, change.location)
    if has_baseline is None:
        for rank, identity in sorted(prior_ids.items()):
            lesion = prior_lesions.get(rank)
            if lesion is None:
                continue  # not a lesion of the prior's report
            row = tracker.ensure(identity, comparison.prior_study_id)
            session.add(
                LesionObservation(
                    tracked_lesion_id=row.id,
                    study_id=comparison.prior_study_id,
                    comparison_id=comparison.id,
                    job_id=comparison.prior_job_id,
                    rank=rank,
                    category=None,
                    volume_ml=lesion.volume_ml,
                    location=location_of_prior.get(rank),
                    centroid_mm_lps=list(lesion.centroid_mm_lps)
                    if lesion.centroid_mm_lps
                    else None,
                )
            )
    for index, change in enumerate(report.lesions):
        identity = Identity(change.tracking_uid, change.tracking_id)
        first = (
            comparison.prior_study_id
            if change.tracking_uid in prior_uids
            else comparison.current_study_id
        )
        row = tracker.ensure(identity, first)
        gone = change.category is ChangeCategory.DISAPPEARED
        session.add(
            LesionObservation(
                tracked_lesion_id=row.id,
                study_id=comparison.current_study_id,
                comparison_id=comparison.id,
                job_id=comparison.current_job_id,
                rank=None if gone else change.current_label,
                category=change.category,
                volume_ml=0.0 if gone else change.volume_ml,
                location=change.location,
                centroid_mm_lps=list(change.centroid_mm_lps),
                reading_model=reading.model if reading else None,
                reading_rank=None if reading is None or gone else reading.ranks[index],
            )
        )
    session.flush()


class _Tracker:
    """Finds or creates tracked lesions of one patient."""

    def __init__(self, session: Session, patient_id: str, issuer: str | None) -> None:
        self.session = session
        self.patient_id = patient_id
        self.issuer = issuer
        self._next: int | None = None

    def ensure(self, identity: Identity, first_study_id: int) -> TrackedLesion:
        row = self.session.scalar(
            select(TrackedLesion).where(TrackedLesion.tracking_uid == identity.tracking_uid)
        )
        if row is not None:
            return row
        number = number_of(identity.tracking_id)
        if number is None:
            if self._next is None:
                self._next = max_lesion_number(self.session, self.patient_id, self.issuer) + 1
            number, self._next = self._next, self._next + 1
        elif self._next is not None:
            self._next = max(self._next, number + 1)
        row = TrackedLesion(
            patient_id=self.patient_id,
            issuer=self.issuer,
            tracking_uid=identity.tracking_uid,
            tracking_id=identity.tracking_id[:16],
            number=number,
            first_study_id=first_study_id,
        )
        self.session.add(row)
        self.session.flush()
        return row


# --- a patient's lesions across visits ---------------------------------------------------------


class LesionVisit(BaseModel):
    """One tracked lesion as one study saw it."""

    study_uid: str
    study_date: dt.date | None
    job_id: str
    comparison_id: str | None
    rank: int | None
    category: ChangeCategory | None  # None: the study was the baseline of a comparison
    volume_ml: float
    location: Location | None
    centroid_mm_lps: tuple[float, float, float] | None


class TrackedLesionHistory(BaseModel):
    """One tracked lesion of a patient and each visit's observation of it."""

    tracking_uid: str
    tracking_id: str
    number: int
    issuer: str | None
    first_study_uid: str
    visits: list[LesionVisit]


def patient_lesions(session: Session, patient_id: str) -> list[TrackedLesionHistory]:
    """The patient's tracked lesions (by number), each with one observation per study.

    Where a study was seen by several comparisons, the newest comparison that had it as its
    current study wins, then its baseline observation.
    """
    lesions = list(
        session.scalars(
            select(TrackedLesion)
            .where(TrackedLesion.patient_id == patient_id)
            .order_by(TrackedLesion.issuer, TrackedLesion.number, TrackedLesion.id)
        )
    )
    if not lesions:
        return []
    first_uids: dict[int, str] = {
        study_id: uid
        for study_id, uid in session.execute(
            select(Study.id, Study.study_uid).where(
                Study.id.in_({lesion.first_study_id for lesion in lesions})
            )
        )
    }
    rows = session.execute(
        select(LesionObservation, Study, Comparison.finished_at)
        .join(Study, LesionObservation.study_id == Study.id)
        .outerjoin(Comparison, LesionObservation.comparison_id == Comparison.id)
        .where(LesionObservation.tracked_lesion_id.in_([lesion.id for lesion in lesions]))
    ).all()
    best: dict[tuple[int, int], tuple[tuple[bool, dt.datetime], LesionVisit]] = {}
    floor = dt.datetime.min.replace(tzinfo=dt.UTC)
    for obs, study, finished in rows:
        key = (obs.tracked_lesion_id, obs.study_id)
        order = (obs.category is not None, finished or floor)
        visit = LesionVisit(
            study_uid=study.study_uid,
            study_date=study.study_date,
            job_id=obs.job_id,
            comparison_id=obs.comparison_id,
            rank=obs.rank,
            category=obs.category,
            volume_ml=obs.volume_ml,
            location=obs.location,
            centroid_mm_lps=tuple(obs.centroid_mm_lps) if obs.centroid_mm_lps else None,
        )
        if key not in best or order > best[key][0]:
            best[key] = (order, visit)
    out = []
    for lesion in lesions:
        visits = [v for (lid, _), (_, v) in best.items() if lid == lesion.id]
        visits.sort(key=lambda v: (v.study_date or dt.date.min, v.study_uid))
        out.append(
            TrackedLesionHistory(
                tracking_uid=lesion.tracking_uid,
                tracking_id=lesion.tracking_id,
                number=lesion.number,
                issuer=lesion.issuer,
                first_study_uid=first_uids.get(lesion.first_study_id, ""),
                visits=visits,
            )
        )
    return out
