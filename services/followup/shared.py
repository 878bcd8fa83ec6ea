"""One model for both visits: which visits a comparison re-analyses, and lesions across it.

Two visits analysed by different models (a follow-up without T1 read by the FLAIR-only model,
a prior read by the FLAIR+T1 model) differ by the models' difference as well as by the
brain: on one head analysed once with each model, 12 of 27 lesions read as "enlarging". A
comparison therefore reads both visits with the same model, the richest that the series both
visits hold support, and re-analyses the visit(s) whose own result came from another model.

The single-study results stay as they were. Lesions keep their persistent identities across
the re-analysis: each lesion of one analysis of a study corresponds to the lesion of the
other analysis of the same study (same FLAIR grid) that it overlaps most, one to one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from mslesion.services.errors import InputError
from mslesion.services.followup.artefacts import read_labels
from mslesion.services.followup.model import FollowUpReport
from mslesion.services.reporting.json_report import StudyReport
from mslesion.services.segmentation.catalogue import ModelChoice, ModelSet

VISITS = ("prior", "current")
T = TypeVar("T")


@dataclass(frozen=True)
class SharedModelPlan:
    """The model both visits are read with, the visits to re-analyse with it, and why."""

    choice: ModelChoice
    reanalyse: tuple[str, ...]  # "prior" and/or "current"
    note: str

    @property
    def model(self) -> str:
        """The shared model as reports name it: "name version"."""
        return _chosen_name(self.choice)


def _model_of(report: StudyReport) -> str:
    return f"{report.model_name} {report.model_version}"


def _chosen_name(choice: ModelChoice) -> str:
    return f"{choice.manifest.name} {choice.manifest.version}"


def plan_shared_model(
    prior: StudyReport, current: StudyReport, models: ModelSet
) -> SharedModelPlan | None:
    """The re-analysis a pair needs, or None when both visits were read by the same model.

    The shared model is the catalogue's choice for the series both analyses used (each
    study holds at least the series its own model took).

    Raises:
        InputError: when no model of the catalogue takes the series both visits hold.
    """
    if _model_of(prior) == _model_of(current):
        return None
    shared = set(prior.series) & set(current.series)
    choice = models.choose(shared)
    chosen = _chosen_name(choice)
    reports = {"prior": prior, "current": current}
    reanalyse = tuple(v for v in VISITS if _model_of(reports[v]) != chosen)
    own = ", ".join(f"{v}: {_model_of(reports[v])}" for v in reanalyse)
    note = (
        f"the visits' own results came from different models ({_model_of(prior)} before, "
        f"{_model_of(current)} now); both were read with {chosen}, the model the series both "
        f"visits hold support, for this comparison (re-analysed: {own})"
    )
    return SharedModelPlan(choice, reanalyse, note)


def correspondence(source: np.ndarray, target: np.ndarray) -> dict[int, int]:
    """Source lesion rank -> target lesion rank, one to one, by largest overlap first.

    ``source`` and ``target`` are two label maps of the same study on the same grid (two
    analyses of one FLAIR). A lesion without an overlapping free partner has no entry.

    Raises:
        InputError: when the maps are not on the same grid.
    """
    if source.shape != target.shape:
        raise InputError(
            f"two analyses of one study lie on different grids ({source.shape} vs "
            f"{target.shape}): the FLAIR series differ"
        )
    both = (source > 0) & (target > 0)
    pairs, counts = np.unique(
        np.stack([source[both], target[both]]).astype(np.int64), axis=1, return_counts=True
    )
    taken_source: set[int] = set()
    taken_target: set[int] = set()
    out: dict[int, int] = {}
    # Ties broken by rank (larger lesions first), so the result is deterministic.
    for k in sorted(range(counts.size), key=lambda i: (-counts[i], pairs[0, i], pairs[1, i])):
        s, t = int(pairs[0, k]), int(pairs[1, k])
        if s not in taken_source and t not in taken_target:
            out[s] = t
            taken_source.add(s)
            taken_target.add(t)
    return out


def own_ranks(reanalysed_dir: Path, own_dir: Path) -> dict[int, int]:
    """Re-analysis rank -> rank in the study's own result (:func:`correspondence`)."""
    return correspondence(read_labels(reanalysed_dir), read_labels(own_dir))


def repeated_reading(
    recorded: Mapping[int, tuple[T, float]], volumes: Mapping[int, float]
) -> dict[int, T]:
    """Identities recorded for an earlier re-analysis, if a new one repeats it; else none.

    ``recorded``: rank -> (identity, volume in ml) as an earlier comparison saw that reading;
    ``volumes``: rank -> volume of the new re-analysis. A re-analysis of the same instances
    with the same model repeats the earlier one lesion for lesion; every recorded rank must
    be present with its volume (1 %, at least 0.001 ml), else the ranks may name other lesions
    and nothing is taken.
    """
    same = all(
        rank in volumes and abs(volumes[rank] - ml) <= max(1e-3, 0.01 * ml)
        for rank, (_, ml) in recorded.items()
    )
    return {rank: identity for rank, (identity, _) in recorded.items()} if same else {}


def carry_over(
    identities: Mapping[int, T],
    to_own: Mapping[int, int],
    ranks: list[int],
    fresh: Callable[[], T],
    recorded: Mapping[int, T] | None = None,
) -> dict[int, T]:
    """Identities by own-result rank carried to the re-analysis's ``ranks``.

    A lesion takes the identity an earlier comparison recorded for the same reading
    (``recorded``, by re-analysis rank), else that of its own-result counterpart (``to_own``,
    from :func:`own_ranks`); one with neither gets ``fresh()``, called in rank order. No
    identity is given twice: a counterpart's identity already taken by a recorded one is not.
    """
    recorded = recorded or {}
    taken = [recorded[rank] for rank in ranks if rank in recorded]
    out: dict[int, T] = {}
    for rank in sorted(ranks):
        own = to_own.get(rank)
        if rank in recorded:
            out[rank] = recorded[rank]
        elif own is not None and own in identities and identities[own] not in taken:
            out[rank] = identities[own]
            taken.append(identities[own])
        else:
            out[rank] = fresh()
    return out


def ranks_for_record(
    report: FollowUpReport,
    prior_map: Mapping[int, int] | None,
    current_map: Mapping[int, int] | None,
) -> FollowUpReport:
    """The report with its ranks translated back to the visits' own analyses.

    The database keys lesion observations by the rank in each study's own result (that is
    what a later comparison reads), so a comparison made on re-analyses is recorded under
    the corresponding own ranks (:func:`correspondence` from re-analysis to own result); a
    map of None leaves that visit's ranks as they are. A lesion without a counterpart in the
    own result is recorded without a rank.
    """
    if prior_map is None and current_map is None:
        return report

    def prior_ranks(ranks: list[int]) -> list[int]:
        if prior_map is None:
            return ranks
        return [prior_map[r] for r in ranks if r in prior_map]

    def current_rank(rank: int | None) -> int | None:
        if current_map is None or rank is None:
            return rank
        return current_map.get(rank)

    lesions = [
        change.model_copy(
            update={
                "current_label": current_rank(change.current_label),
                "prior_labels": prior_ranks(change.prior_labels),
            }
        )
        for change in report.lesions
    ]
    return report.model_copy(update={"lesions": lesions})
