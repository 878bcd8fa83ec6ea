"""The retry policy shared by jobs and comparisons: permanent, transient and lost-worker cases."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mslesion.services.errors import InputError, RegistrationError
from mslesion.worker.attempts import Attempt
from mslesion.worker.outcomes import RunOutcome


class Record:
    """What the policy asked the caller to do."""

    def __init__(self) -> None:
        self.failed: list[tuple[str, Exception | None]] = []
        self.requeued: list[str] = []

    def fail(self, reason: str, error: Exception | None) -> RunOutcome:
        self.failed.append((reason, error))
        return RunOutcome.FAILED

    def requeue(self, reason: str) -> None:
        self.requeued.append(reason)


def _raise(error: Exception) -> Callable[[Path], RunOutcome]:
    def body(work: Path) -> RunOutcome:
        work.mkdir(parents=True)
        (work / "partial.dcm").write_bytes(b"half")
        raise error

    return body


def test_success_returns_the_body_outcome_and_removes_the_scratch(tmp_path: Path) -> None:
    record, work = Record(), tmp_path / "work"

    def body(folder: Path) -> RunOutcome:
        folder.mkdir()
        return RunOutcome.SUCCEEDED

    outcome = Attempt("job", "j1", 1, 2, False).run(work, body, record.fail, record.requeue)
    assert outcome is RunOutcome.SUCCEEDED
    assert not work.exists()
    assert record.failed == [] and record.requeued == []


def test_a_permanent_error_fails_at_once_with_its_cause(tmp_path: Path) -> None:
    record, error = Record(), RegistrationError("prior FLAIR cannot be registered")
    outcome = Attempt("comparison", "c1", 1, 2, False).run(
        tmp_path / "w", _raise(error), record.fail, record.requeue
    )
    assert outcome is RunOutcome.FAILED
    assert record.failed == [("prior FLAIR cannot be registered", error)]
    assert record.requeued == []
    assert not (tmp_path / "w").exists()


def test_a_transient_error_is_requeued_until_the_final_attempt(tmp_path: Path) -> None:
    record = Record()
    outcome = Attempt("job", "j1", 1, 2, False).run(
        tmp_path / "w", _raise(OSError("disk full")), record.fail, record.requeue
    )
    assert outcome is RunOutcome.RETRY
    assert record.requeued == ["OSError: disk full"]
    assert record.failed == []


@pytest.mark.parametrize(("number", "final"), [(3, False), (1, True)])
def test_a_transient_error_on_the_final_attempt_fails(
    tmp_path: Path, number: int, final: bool
) -> None:
    record = Record()
    outcome = Attempt("job", "j1", number, 2, final).run(
        tmp_path / "w", _raise(OSError("disk full")), record.fail, record.requeue
    )
    assert outcome is RunOutcome.FAILED
    assert record.failed == [(f"gave up after {number} attempt(s): OSError: disk full", None)]
    assert record.requeued == []


def test_attempts_used_up_by_lost_workers_fail_without_running(tmp_path: Path) -> None:
    record, ran = Record(), []

    def body(work: Path) -> RunOutcome:
        ran.append(work)
        return RunOutcome.SUCCEEDED

    outcome = Attempt("comparison", "c1", 4, 2, False).run(
        tmp_path / "w", body, record.fail, record.requeue
    )
    assert outcome is RunOutcome.FAILED and ran == []
    reason, error = record.failed[0]
    assert reason.startswith("gave up after 3 attempt(s): the worker running the comparison")
    assert error is None


def test_bad_input_is_permanent(tmp_path: Path) -> None:
    record = Record()
    Attempt("job", "j1", 1, 2, False).run(
        tmp_path / "w", _raise(InputError("no FLAIR series")), record.fail, record.requeue
    )
    assert [reason for reason, _ in record.failed] == ["no FLAIR series"]
