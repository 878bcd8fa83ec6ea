"""What the node must answer for a corpus case, in the protocol's own terms."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mslesion.services.ingest import DicomStatus


class Outcome(StrEnum):
    """Stored (C-STORE 0x0000 / a ReferencedSOPSequence item) or refused with a status."""

    STORED = "stored"
    REFUSED = "refused"


@dataclass(frozen=True)
class Expected:
    """The outcome; for a refusal the DICOM status and a regex the reason must match."""

    outcome: Outcome
    status: DicomStatus | None = None
    reason: str = ""

    @classmethod
    def stored(cls) -> Expected:
        """The instance is stored (or recognised as a duplicate)."""
        return cls(Outcome.STORED)

    @classmethod
    def refused(cls, status: DicomStatus, reason: str) -> Expected:
        """The instance is refused with ``status``; ``reason`` is searched, ignoring case."""
        return cls(Outcome.REFUSED, status, reason)

    def __str__(self) -> str:
        if self.status is None:
            return self.outcome.value
        return f"{self.outcome.value} 0x{int(self.status):04X} /{self.reason}/"
