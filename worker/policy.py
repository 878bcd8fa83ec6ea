"""Retry policy shared by the Celery tasks and the in-process dispatcher.

Exponential backoff: the n-th retry (n = 0, 1, ...) waits ``backoff * 2**n`` seconds. A job
gets ``job_max_retries`` retries after its first attempt, a forwarding round
``forward_max_retries``; the attempt after the last retry is the final one.
"""

from __future__ import annotations

from mslesion.services.config import Settings


def job_retry_delay(settings: Settings, retries: int) -> float:
    """Seconds to wait before retry number ``retries`` (0-based) of a job."""
    return settings.job_retry_backoff_s * 2**retries


def forward_retry_delay(settings: Settings, retries: int) -> float:
    """Seconds to wait before retry number ``retries`` (0-based) of a forwarding round."""
    return settings.forward_retry_backoff_s * 2**retries


def is_final_job_attempt(settings: Settings, retries: int) -> bool:
    """True when a job that already had ``retries`` retries gets no further one."""
    return retries >= settings.job_max_retries


def is_final_forward_attempt(settings: Settings, retries: int) -> bool:
    """True when a forwarding round that already had ``retries`` retries gets no further one."""
    return retries >= settings.forward_max_retries


def longest_retry_delay(settings: Settings) -> float:
    """The longest countdown any retry can have (sizes the broker's visibility timeout)."""
    return max(
        job_retry_delay(settings, max(settings.job_max_retries - 1, 0)),
        forward_retry_delay(settings, max(settings.forward_max_retries - 1, 0)),
    )
