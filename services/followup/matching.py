"""Match lesions across two visits on one grid and decide what happened to each.

Both visits are segmented on their own, each on its own acquisition grid; the prior's maps are
then pulled onto the current grid through the registration. Lesions that overlap (allowing
:data:`MATCH_TOLERANCE_MM` for registration and partial-volume error) form one group; a group
is judged on its summed volumes, so a lesion that merges or splits is not mistaken for new
growth. Volumes are each visit's own measurement (the single-study report's), so an unchanged
lesion reads the same as in each study's own report.

The rules (thresholds in :class:`~mslesion.services.followup.model.ChangeThresholds`):

* **new**: a current lesion with no prior lesion within the tolerance, whose region the prior
  segmentation clearly called normal (peak prior probability below
  ``new_max_prior_probability``: a lesion just under the threshold before is not new) and that
  is brighter now than before on the FLAIR (mean rise of at least ``new_min_intensity_rise``
  brain-standardised units, so a lesion the segmentation merely missed before is not new);
* **enlarging** / **shrinking**: the group's volume changed by more than the relative threshold
  (``small_growth`` below ``small_lesion_ml``, ``large_growth`` above, the literature's
  ~50 % / ~25 %) and by more than ``min_change_ml``;
* **stable**: otherwise; **disappeared**: a prior lesion with no current lesion near it.

When the change detector ran (:mod:`~mslesion.services.followup.change_detector`), its reading
is evidence too: a current lesion holding at least ``change_min_ml`` of tissue the detector
reads as new or enlarging (probability ≥ ``change_probability``) is **new** when no prior
lesion is near it and **enlarging** otherwise, whatever the volume rules said. Only lesions of
the current segmentation are judged: the detector never adds a lesion.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from mslesion.services.followup.analysis import CATEGORY_VALUE
from mslesion.services.followup.model import (
    ACTIVE_CATEGORIES,
    ChangeCategory,
    ChangeEvidence,
    ChangeThresholds,
    LesionChange,
    Location,
)

MATCH_TOLERANCE_MM = 2.0


@dataclass(frozen=True)
class VisitLesion:
    """One lesion of one visit as its single-study report measured it."""

    rank: int
    volume_ml: float
    centroid_mm_lps: tuple[float, float, float]  # in the current study's patient space
    location: Location
    tracking_uid: str
    tracking_id: str


@dataclass
class VisitMaps:
    """The maps of the two visits, all on the current grid (frames, rows, columns)."""

    current_labels: np.ndarray
    prior_labels: np.ndarray  # nearest-neighbour resampled prior ranks
    prior_probability: np.ndarray
    intensity_rise: np.ndarray  # current minus prior FLAIR, brain-standardised
    spacing_mm: tuple[float, float, float]  # (frame, row, column) spacing
    change_probability: np.ndarray | None = None  # the change detector's, when it ran


@dataclass
class Matching:
    """The outcome: every tracked lesion and the per-voxel category map."""

    lesions: list[LesionChange]
    category_map: np.ndarray
    next_number: int
    notes: list[str] = field(default_factory=list)


def match_visits(
    maps: VisitMaps,
    current: Mapping[int, VisitLesion],
    prior: Mapping[int, VisitLesion],
    thresholds: ChangeThresholds,
    next_number: int,
) -> Matching:
    """Match current and prior lesions and categorise each (see the module docstring).

    ``current`` lesions carry their single-study tracking UIDs: a lesion that matches a prior
    one takes the prior's identity instead; a new one keeps its own and gets the next
    ``L<n>`` name.
    """
    edges = _overlaps(maps)
    groups = _groups(edges, set(current), set(prior))
    category_map = np.zeros(maps.current_labels.shape, dtype=np.uint8)
    changes: list[LesionChange] = []
    counter = [next_number]
    for cur_ranks, prior_ranks in groups:
        if not prior_ranks:
            changes += _unmatched_current(cur_ranks, current, maps, thresholds, counter)
        elif not cur_ranks:
            changes += [_disappeared(prior[p]) for p in sorted(prior_ranks)]
        else:
            changes += _matched(cur_ranks, prior_ranks, current, prior, edges, thresholds, counter)
    changed = _changed_voxels(maps, thresholds)
    changes = [_with_evidence(c, changed, maps.spacing_mm, thresholds) for c in changes]
    lut = np.zeros(int(maps.current_labels.max(initial=0)) + 1, dtype=np.uint8)
    for change in changes:
        if change.current_label is not None and change.category in CATEGORY_VALUE:
            lut[change.current_label] = CATEGORY_VALUE[change.category]
    category_map = lut[maps.current_labels]
    return Matching(changes, category_map, counter[0])


def _changed_voxels(maps: VisitMaps, thresholds: ChangeThresholds) -> np.ndarray | None:
    """Per current label, its voxels the change detector read as changed (None: no detector)."""
    if maps.change_probability is None:
        return None
    changed = maps.change_probability >= thresholds.change_probability
    size = int(maps.current_labels.max(initial=0)) + 1
    return np.bincount(maps.current_labels[changed].ravel(), minlength=size)


def _with_evidence(
    change: LesionChange,
    changed: np.ndarray | None,
    spacing_mm: tuple[float, float, float],
    thresholds: ChangeThresholds,
) -> LesionChange:
    """The lesion with the change detector's reading and what makes it active, if anything."""
    evidence = [ChangeEvidence.VOLUMES] if change.category in ACTIVE_CATEGORIES else []
    if changed is None or change.current_label is None:
        return change.model_copy(update={"evidence": evidence})
    voxels = int(changed[change.current_label])
    change_ml = round(voxels * float(np.prod(spacing_mm)) / 1000.0, 4)
    update: dict[str, object] = {"change_ml": change_ml}
    if voxels and change_ml >= thresholds.change_min_ml:
        evidence.append(ChangeEvidence.CHANGE_DETECTOR)
        if change.category not in ACTIVE_CATEGORIES:
            new = not change.prior_labels
            update["category"] = ChangeCategory.NEW if new else ChangeCategory.ENLARGING
            if new:
                update["prior_volume_ml"] = 0.0
    update["evidence"] = evidence
    return change.model_copy(update=update)


def _overlaps(maps: VisitMaps) -> dict[tuple[int, int], int]:
    """(current rank, prior rank) → overlapping voxels, prior grown by the match tolerance."""
    prior = _grow_labels(maps.prior_labels, MATCH_TOLERANCE_MM, maps.spacing_mm)
    both = (maps.current_labels > 0) & (prior > 0)
    pairs = np.stack([maps.current_labels[both], prior[both]], axis=1)
    if pairs.size == 0:
        return {}
    unique, counts = np.unique(pairs, axis=0, return_counts=True)
    return {(int(c), int(p)): int(n) for (c, p), n in zip(unique, counts, strict=True)}


def _grow_labels(labels: np.ndarray, mm: float, spacing: tuple[float, float, float]) -> np.ndarray:
    """Each background voxel within ``mm`` of a lesion takes that nearest lesion's label."""
    if not labels.any():
        return labels
    distance, index = ndimage.distance_transform_edt(
        labels == 0, sampling=spacing, return_indices=True
    )
    grown = labels[tuple(index)]
    return np.where(distance <= mm, grown, 0)


def _groups(
    edges: Mapping[tuple[int, int], int], current: set[int], prior: set[int]
) -> list[tuple[set[int], set[int]]]:
    """Connected components of the bipartite overlap graph: (current ranks, prior ranks)."""
    parent: dict[tuple[str, int], tuple[str, int]] = {}

    def find(node: tuple[str, int]) -> tuple[str, int]:
        while parent.setdefault(node, node) != node:
            node = parent[node]
        return node

    for c, p in edges:
        if c in current and p in prior:
            parent[find(("c", c))] = find(("p", p))
    members: dict[tuple[str, int], tuple[set[int], set[int]]] = {}
    for c in current:
        members.setdefault(find(("c", c)), (set(), set()))[0].add(c)
    for p in prior:
        members.setdefault(find(("p", p)), (set(), set()))[1].add(p)
    return sorted(members.values(), key=lambda g: (min(g[0], default=10**9), min(g[1], default=0)))


def _name(counter: list[int]) -> str:
    name = f"L{counter[0]}"
    counter[0] += 1
    return name


def _unmatched_current(
    ranks: set[int],
    current: Mapping[int, VisitLesion],
    maps: VisitMaps,
    thresholds: ChangeThresholds,
    counter: list[int],
) -> list[LesionChange]:
    """A current lesion nowhere near a prior one: new, unless the prior hinted at it."""
    out = []
    for rank in sorted(ranks):
        lesion = current[rank]
        region = maps.current_labels == rank
        prior_peak = float(maps.prior_probability[region].max(initial=0.0))
        rise = float(maps.intensity_rise[region].mean()) if region.any() else 0.0
        is_new = (
            prior_peak < thresholds.new_max_prior_probability
            and rise >= thresholds.new_min_intensity_rise
            and lesion.volume_ml >= thresholds.min_new_ml
        )
        # Not new: the prior showed it below threshold, or it is not brighter than before —
        # counted as stable, with the volume the prior would have had unknown (its own now).
        out.append(
            LesionChange(
                tracking_uid=lesion.tracking_uid,
                tracking_id=_name(counter),
                category=ChangeCategory.NEW if is_new else ChangeCategory.STABLE,
                current_label=rank,
                volume_ml=lesion.volume_ml,
                prior_volume_ml=0.0 if is_new else lesion.volume_ml,
                centroid_mm_lps=lesion.centroid_mm_lps,
                location=lesion.location,
            )
        )
    return out


def _disappeared(lesion: VisitLesion) -> LesionChange:
    return LesionChange(
        tracking_uid=lesion.tracking_uid,
        tracking_id=lesion.tracking_id,
        category=ChangeCategory.DISAPPEARED,
        current_label=None,
        prior_labels=[lesion.rank],
        volume_ml=0.0,
        prior_volume_ml=lesion.volume_ml,
        centroid_mm_lps=lesion.centroid_mm_lps,
        location=lesion.location,
    )


def categorise(
    volume_ml: float, prior_volume_ml: float, thresholds: ChangeThresholds
) -> ChangeCategory:
    """Enlarging, shrinking or stable for a lesion (group) measured at both visits."""
    ratio = (
        thresholds.small_growth
        if prior_volume_ml < thresholds.small_lesion_ml
        else thresholds.large_growth
    )
    change = volume_ml - prior_volume_ml
    if change >= max(thresholds.min_change_ml, ratio * prior_volume_ml):
        return ChangeCategory.ENLARGING
    # Symmetric in ratio: shrinking by the factor that enlarging grows by.
    if -change >= max(thresholds.min_change_ml, prior_volume_ml * ratio / (1.0 + ratio)):
        return ChangeCategory.SHRINKING
    return ChangeCategory.STABLE


def _matched(
    cur_ranks: set[int],
    prior_ranks: set[int],
    current: Mapping[int, VisitLesion],
    prior: Mapping[int, VisitLesion],
    edges: Mapping[tuple[int, int], int],
    thresholds: ChangeThresholds,
    counter: list[int],
) -> list[LesionChange]:
    """One group of overlapping lesions: judged on summed volumes, identities inherited."""
    now = sum(current[c].volume_ml for c in cur_ranks)
    before = sum(prior[p].volume_ml for p in prior_ranks)
    category = categorise(now, before, thresholds)
    # Each prior identity goes to the current lesion overlapping it most.
    heir: dict[int, int] = {}
    for p in prior_ranks:
        candidates = [(edges.get((c, p), 0), -c) for c in cur_ranks]
        best = max(candidates)
        if best[0] > 0:
            heir[p] = -best[1]
    out = []
    for c in sorted(cur_ranks):
        inherited = sorted(
            (p for p, h in heir.items() if h == c), key=lambda p: -edges.get((c, p), 0)
        )
        lesion = current[c]
        share = lesion.volume_ml / now if now > 0 else 0.0
        touching = sorted(p for p in prior_ranks if edges.get((c, p), 0) > 0)
        if inherited:
            main = prior[inherited[0]]
            uid, name = main.tracking_uid, main.tracking_id
            merged = [prior[p].tracking_uid for p in inherited[1:]]
            split_from = None
        else:
            uid, name = lesion.tracking_uid, _name(counter)
            merged = []
            parent = max(touching, key=lambda p: edges.get((c, p), 0)) if touching else None
            split_from = prior[parent].tracking_uid if parent is not None else None
        out.append(
            LesionChange(
                tracking_uid=uid,
                tracking_id=name,
                category=category,
                current_label=c,
                prior_labels=touching,
                volume_ml=lesion.volume_ml,
                prior_volume_ml=before * share,
                centroid_mm_lps=lesion.centroid_mm_lps,
                location=lesion.location,
                merged_from=merged,
                split_from=split_from,
            )
        )
    return out
