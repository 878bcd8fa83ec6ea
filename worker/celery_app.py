"""The Celery application of the worker.

Nothing is read at import time. :func:`create_celery` builds an app from explicit settings
(tests, the gateway's :class:`~mslesion.worker.dispatch.CeleryDispatcher`, ``mslesion
worker``). For ``celery -A mslesion.worker.celery_app worker`` the module attribute ``app`` is
made on first access (PEP 562 module ``__getattr__``) from
:func:`mslesion.services.config.get_settings` — the Celery CLI is an entry point, and looking
the attribute up is exactly what it does. This keeps a plain ``import
mslesion.worker.celery_app`` free of environment reads while still giving the CLI an ``app``,
without Celery loader hooks whose timing is hard to follow.

Deployment: one worker container per GPU, each with its own ``MSLESION_CUDA_DEVICE_ID`` (or
``CUDA_VISIBLE_DEVICES``) and ``--concurrency 1``: a worker process holds one set of ONNX
Runtime sessions for its whole life (see :mod:`mslesion.worker.tasks`), so one process per
GPU keeps exactly one copy of the model in each GPU's memory. CPU workers may run several
processes. The job time limits (``JOB_SOFT_TIME_LIMIT_S``, ``JOB_TIME_LIMIT_S``) live in
:mod:`mslesion.services.config`, beside the ``job_lease_s`` that must outlast them.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from celery import Celery

from mslesion.services.config import JOB_TIME_LIMIT_S, Settings, get_settings
from mslesion.services.errors import MSLesionError
from mslesion.services.forwarding import parse_destinations
from mslesion.worker.policy import longest_retry_delay

RUN_JOB_TASK = "mslesion.run_job"
FORWARD_TASK = "mslesion.forward_results"
RUN_COMPARISON_TASK = "mslesion.run_comparison"
FORWARD_COMPARISON_TASK = "mslesion.forward_comparison"


class NodeCelery(Celery):
    """A Celery app that carries the node's settings to the tasks it runs."""

    node_settings: Settings


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery configuration for the node."""
    # Redis redelivers an unacknowledged message after the visibility timeout. With late
    # acks a message stays unacknowledged while its job runs and, for retries, until its
    # countdown ends; the timeout must exceed both or a second worker would start the job.
    visibility_s = int(JOB_TIME_LIMIT_S + longest_retry_delay(settings) + 600)
    return {
        "broker_url": settings.broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {"visibility_timeout": visibility_s},
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,  # a long job never holds a second one hostage
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": True,  # the database holds the outcome
        # Each pool process loads the model in worker_process_init before it reports up;
        # creating CUDA sessions can take longer than Celery's default 4 s.
        "worker_proc_alive_timeout": 120.0,
    }


def create_celery(settings: Settings) -> NodeCelery:
    """A configured Celery app; raises :class:`MSLesionError` on a bad configuration."""
    if not settings.broker_url:
        raise MSLesionError(
            "MSLESION_BROKER_URL is not set: a Celery worker needs a broker "
            "(without one, `mslesion serve` runs jobs in-process)"
        )
    parse_destinations(settings.forward_destinations)  # fail at start, not per delivery
    app = NodeCelery("mslesion", include=["mslesion.worker.tasks"])
    app.node_settings = settings
    app.conf.update(celery_config(settings))
    return app


@lru_cache(maxsize=1)
def _entry_point_app() -> NodeCelery:
    return create_celery(get_settings())


def __getattr__(name: str) -> Any:
    """``app``, made from the environment on first access.

    This is what ``celery -A mslesion.worker.celery_app`` loads.
    """
    if name == "app":
        return _entry_point_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
