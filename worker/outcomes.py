"""What a job run or a forwarding round ended with (shared by runner, tasks, dispatchers)."""

from __future__ import annotations

from enum import StrEnum


class RunOutcome(StrEnum):
    """What one run of a job ended with."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"  # bad input, or transient errors on the final attempt
    RETRY = "retry"  # transient error: the job is queued again, the caller schedules a retry
    SKIPPED = "skipped"  # already finished (or unknown): nothing was done


class ForwardOutcome(StrEnum):
    """What one forwarding round ended with."""

    SENT = "sent"  # nothing left pending
    PENDING = "pending"  # some destinations failed and will be retried
    FAILED = "failed"  # some destinations failed on the final attempt
