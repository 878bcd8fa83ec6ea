"""One comparison end to end: two analysed studies' result folders in, follow-up outputs out.

This is the one entry point the worker, the CLI (``mslesion compare``) and the evaluation
call. It never re-segments: it reuses each study's single-study analysis (the artefacts the
pipeline keeps in ``<result>/analysis/``), registers the prior FLAIR onto the current one,
matches lesions and writes the follow-up SEG, SR, secondary capture, JSON and montage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom import Dataset

from mslesion.services.config import Settings
from mslesion.services.followup.analysis import FollowUpAnalysis
from mslesion.services.reporting.history_chart import ChartPoint


@dataclass(frozen=True)
class LesionIdentity:
    """A lesion's persistent identity: the tracking UID and short name every visit reuses."""

    tracking_uid: str
    tracking_id: str  # e.g. "L7"


@dataclass(frozen=True)
class PriorIdentities:
    """Identities of the prior study's lesions by rank, and the next free ``L<n>`` number."""

    by_rank: dict[int, LesionIdentity]
    next_number: int


@dataclass
class ComparisonResult:
    """What :func:`compare_results` produced and where it was written."""

    analysis: FollowUpAnalysis
    files: dict[str, Path]


def compare_results(
    prior_dir: Path,
    current_dir: Path,
    out_dir: Path,
    settings: Settings,
    *,
    current_sources: list[Dataset],
    prior_sources: Sequence[Dataset] = (),
    identities: PriorIdentities | None = None,
    history: Sequence[ChartPoint] = (),
) -> ComparisonResult:
    """Compare two analysed studies of one patient and write the follow-up outputs.

    ``prior_dir`` and ``current_dir`` are single-study result folders (``mslesion segment``
    output or a job's results). ``current_sources`` are the current FLAIR's DICOM datasets
    (the SEG references them); ``prior_sources`` the prior FLAIR's, referenced as other
    evidence by the SR when given. ``identities`` are the prior lesions' persistent identities
    (from the database); without them the prior report's tracking UIDs and ``L<rank>`` are used.
    ``history`` is the patient's lesion-load timeline for the secondary capture.

    Raises:
        RegistrationError: the prior cannot be aligned to the current study (the
            single-study results stand; nothing is written).
        InputError: a result folder lacks the analysis artefacts or does not match.
    """
    raise NotImplementedError  # implemented in the follow-up core
