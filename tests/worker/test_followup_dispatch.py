"""Comparisons reach workers like jobs: Celery messages on the real Redis, the reconciler's
re-offers from the real PostgreSQL, and a restart of the one-machine node."""

from __future__ import annotations

import datetime as dt
import json

import redis

from mslesion.services.config import Settings
from mslesion.services.followup.model import FollowUpMode
from mslesion.services.jobs import (
    offer_comparisons_of_job,
    reconcile,
    recover_after_restart,
    request_comparison,
)
from mslesion.services.store.database import Database
from mslesion.services.store.repositories import comparisons, forwards
from mslesion.worker import tasks
from mslesion.worker.celery_app import (
    FORWARD_COMPARISON_TASK,
    RUN_COMPARISON_TASK,
    create_celery,
)
from mslesion.worker.dispatch import CeleryDispatcher
from tests.api.conftest import RecordingDispatcher
from tests.services.store.followup_rows import analysed


def _planned(db: Database) -> tuple[str, str]:
    """Two analysed studies of P1 and the comparison planned for the later; (job, comparison)."""
    analysed(db, "P1", "1.1", dt.date(2020, 1, 1))
    _, job_id = analysed(db, "P1", "1.2", dt.date(2021, 1, 1))
    with db.session() as session:
        cid = comparisons.plan_after_job(session, job_id, FollowUpMode.LATEST_PRIOR).comparison_id
    assert cid
    return job_id, cid


def test_celery_messages_name_the_comparison_tasks(redis_url: str) -> None:
    dispatcher = CeleryDispatcher(create_celery(Settings(broker_url=redis_url)))
    dispatcher.enqueue_comparison("c-1")
    dispatcher.enqueue_comparison_forward("c-1")
    client = redis.Redis.from_url(redis_url)
    try:
        messages = [json.loads(m) for m in client.lrange("celery", 0, -1)]
    finally:
        client.close()
    sent = sorted((m["headers"]["task"], m["headers"]["argsrepr"]) for m in messages)
    assert sent == sorted([(RUN_COMPARISON_TASK, "['c-1']"), (FORWARD_COMPARISON_TASK, "['c-1']")])
    assert tasks.run_comparison.name == RUN_COMPARISON_TASK
    assert tasks.forward_comparison.name == FORWARD_COMPARISON_TASK


def test_a_planned_comparison_is_offered_and_remembered(node_db: Database) -> None:
    job_id, cid = _planned(node_db)
    dispatcher = RecordingDispatcher()
    assert offer_comparisons_of_job(node_db, dispatcher, job_id) == [cid]
    assert dispatcher.comparisons == [cid]
    with node_db.session() as session:
        row = comparisons.get_comparison(session, cid)
        assert row is not None and row.enqueued_at is not None
        assert comparisons.stale_queued(session, 3600.0) == []


def test_a_broker_outage_leaves_the_comparison_to_the_reconciler(
    node_db: Database, node_settings: Settings
) -> None:
    job_id, cid = _planned(node_db)
    down = RecordingDispatcher(broken=True)
    assert offer_comparisons_of_job(node_db, down, job_id) == []
    with node_db.session() as session:
        row = comparisons.get_comparison(session, cid)
        assert row is not None and row.enqueued_at is None

    up = RecordingDispatcher()
    # the worker that planned it offers it first: the reconciler waits requeue_after_s
    assert reconcile(node_db, up, node_settings).comparisons == []
    later = node_settings.model_copy(update={"requeue_after_s": 1e-6})
    again = reconcile(node_db, up, later)
    assert again.comparisons == [cid] and up.comparisons == [cid]
    assert reconcile(node_db, up, node_settings).comparisons == []  # offered: not stale yet


def test_lost_comparison_forwards_and_restarts_are_offered_again(
    node_db: Database, node_settings: Settings
) -> None:
    job_id, cid = _planned(node_db)
    with node_db.session() as session:
        forwards.ensure_forwards(session, job_id, ["dicom://PACS@h:104"], comparison_id=cid)
    stale = node_settings.model_copy(update={"requeue_after_s": 1e-6})
    dispatcher = RecordingDispatcher()
    result = reconcile(node_db, dispatcher, stale)
    assert result.lost_comparison_forwards == [cid] and dispatcher.comparison_forwards == [cid]
    assert result.lost_forwards == []  # the study's own forwards are not the comparison's
    restarted = RecordingDispatcher()
    assert cid in recover_after_restart(node_db, restarted)
    assert restarted.comparisons == [cid]


def test_a_manual_request_is_offered(node_db: Database) -> None:
    _planned(node_db)
    analysed(node_db, "P1", "1.3", dt.date(2022, 1, 1))
    dispatcher = RecordingDispatcher()
    cid = request_comparison(node_db, dispatcher, "1.1", "1.3", "admin-key")
    assert dispatcher.comparisons == [cid]
