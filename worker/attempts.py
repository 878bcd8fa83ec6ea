"""One claimed attempt at a unit of work (a job or a comparison): the retry policy in one place.

Attempts are counted in the database by the claim, so redeliveries after a lost worker (which
do not count as Celery retries) cannot loop forever: past ``max_retries + 1`` attempts only
lost workers can have consumed them, and the unit fails with that reason.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mslesion.services.dicom.errors import SeriesRulesError
from mslesion.services.errors import InputError, ModelError
from mslesion.worker.outcomes import RunOutcome

log = logging.getLogger(__name__)

# Problems of the study itself or of the node's model/rules: running again cannot help.
PERMANENT_ERRORS: tuple[type[Exception], ...] = (InputError, ModelError, SeriesRulesError)

Fail = Callable[[str, Exception | None], RunOutcome]
"""Records a failure: the reason, and the permanent error that caused it (None otherwise)."""


@dataclass(frozen=True)
class Attempt:
    """A claimed unit: what it is (``job``, ``comparison``), its id and its attempt number."""

    unit: str
    unit_id: str
    number: int
    max_retries: int
    final: bool  # the caller's (Celery's) view: no retry will follow this one

    def run(
        self,
        work: Path,
        body: Callable[[Path], RunOutcome],
        fail: Fail,
        requeue: Callable[[str], None],
    ) -> RunOutcome:
        """Run ``body`` in the scratch folder ``work`` (removed after), applying the policy.

        Permanent errors fail the unit at once; other errors requeue it (``requeue`` with the
        reason, :attr:`RunOutcome.RETRY`) unless this is the final attempt.
        """
        if self.number > self.max_retries + 1:
            return fail(
                f"gave up after {self.number - 1} attempt(s): the worker running the "
                f"{self.unit} was lost each time (killed or out of memory)",
                None,
            )
        final = self.final or self.number > self.max_retries
        log.info("%s %s: attempt %d started", self.unit, self.unit_id, self.number)
        try:
            return body(work)
        except PERMANENT_ERRORS as exc:
            return fail(str(exc), exc)
        except Exception as exc:  # transient (database, disk, runtime): retried
            reason = f"{type(exc).__name__}: {exc}"
            if final:
                return fail(f"gave up after {self.number} attempt(s): {reason}", None)
            log.warning(
                "%s %s: attempt %d failed (%s); will retry",
                self.unit,
                self.unit_id,
                self.number,
                reason,
            )
            requeue(reason)
            return RunOutcome.RETRY
        finally:
            shutil.rmtree(work, ignore_errors=True)
