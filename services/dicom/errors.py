"""Errors of DICOM ingest: each names the problem and the series (and file) involved."""

from __future__ import annotations

from mslesion.services.errors import InputError, MSLesionError


class DicomInputError(InputError):
    """A DICOM study breaks an ingest rule (unreadable file, bad geometry, no FLAIR...).

    ``str(error)`` starts with the series it concerns, when there is one, so the job log and
    the caller's error report say which series to fix without further lookup.
    """

    def __init__(
        self,
        problem: str,
        *,
        series_uid: str | None = None,
        series_description: str | None = None,
        series_number: int | None = None,
    ) -> None:
        self.problem = problem
        self.series_uid = series_uid
        self.series_description = series_description
        self.series_number = series_number
        super().__init__(self._compose())

    def _compose(self) -> str:
        if self.series_uid is None and self.series_description is None:
            return self.problem
        label = series_label(self.series_number, self.series_description, self.series_uid)
        return f"{label}: {self.problem}"


class SeriesRulesError(MSLesionError):
    """A series-selection rules file (shipped or a site's override) is unreadable or invalid."""


def series_label(number: int | None, description: str | None, uid: str | None) -> str:
    """Human-readable name of a series without patient data: number, description and UID."""
    parts = ["series"]
    if number is not None:
        parts.append(str(number))
    parts.append(repr(description or ""))
    if uid:
        parts.append(f"({uid})")
    return " ".join(parts)
