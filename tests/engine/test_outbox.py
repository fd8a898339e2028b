"""The outbox: every accepted write is evaluated once, even when Redis loses the message."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import dramatiq
import httpx
import pytest
import redis
from sqlalchemy import Engine, func, insert, select

from engine.runtime import Runtime
from engine.scheduler import Scheduler
from storage.db import session_scope
from storage.models import IngestMessage, OutboxRow, Signal
from tests.conftest import ManualClock
from tests.helpers import wait_until


def pending(db: Engine) -> int:
    with session_scope(db) as s:
        return int(s.scalar(select(func.count()).where(OutboxRow.processed_at.is_(None))) or 0)


@pytest.mark.both_dbs
def test_the_worker_marks_each_written_change_processed(
    api: httpx.Client, db: Engine, worker: dramatiq.Worker
) -> None:
    assert api.post("/v1/track", json={"userId": "u1", "event": "login"}).status_code == 200
    assert (
        api.post("/v1/identify", json={"userId": "u1", "traits": {"plan": "pro"}}).status_code
        == 200
    )
    wait_until(lambda: pending(db) == 0)
    with session_scope(db) as s:
        assert s.scalar(select(func.count()).select_from(OutboxRow)) == 3


def test_a_duplicated_message_is_a_no_op(rt: Runtime, db: Engine, worker: dramatiq.Worker) -> None:
    from engine import tasks

    now = datetime(2026, 1, 1, tzinfo=UTC)
    with session_scope(db) as s:
        ids = list(
            s.scalars(
                insert(OutboxRow).returning(OutboxRow.id),
                [
                    {"event_ids": [n], "signals": True, "created_at": now, "enqueued_at": now}
                    for n in range(3)
                ],
            )
        )
    for _ in range(5):
        tasks.enqueue_evaluation(ids)
    rt.broker.join("evaluate", timeout=10_000)
    worker.join()
    with session_scope(db) as s:
        stamps = set(s.scalars(select(OutboxRow.processed_at)))
    assert len(stamps) == 1 and None not in stamps  # processed once, never re-stamped


def test_rows_whose_message_redis_lost_are_recovered(
    api: httpx.Client, rt: Runtime, db: Engine, redis_client: redis.Redis
) -> None:
    assert api.post("/v1/track", json={"userId": "u1", "event": "login"}).status_code == 200
    redis_client.flushdb()  # the broker loses every message
    clock = ManualClock()
    rt.clock = clock
    scheduler = Scheduler(rt, enqueue=_tasks().enqueue_evaluation)
    assert scheduler.recover_outbox() == 0  # not overdue yet: its message may still come
    clock.advance(seconds=rt.settings.outbox_recovery_seconds + 1)
    assert scheduler.recover_outbox() == 2  # the event row and the new contact row
    w = dramatiq.Worker(rt.broker, worker_threads=1, worker_timeout=50)
    w.start()
    try:
        wait_until(lambda: pending(db) == 0)
    finally:
        w.stop()
    assert scheduler.recover_outbox() == 0


def _tasks() -> Any:
    from engine import tasks

    return tasks


def test_several_schedulers_enqueue_each_row_exactly_once(rt: Runtime, db: Engine) -> None:
    old = datetime.now(UTC) - timedelta(hours=1)
    rows = [
        {"event_ids": [n], "signals": True, "created_at": old, "enqueued_at": old}
        for n in range(5000)
    ]
    with session_scope(db) as s:
        s.execute(insert(OutboxRow), rows)
    seen: list[int] = []
    lock = threading.Lock()

    def enqueue(ids: Any) -> None:
        with lock:
            seen.extend(ids)

    schedulers = [Scheduler(rt, enqueue=enqueue) for _ in range(4)]
    threads = [threading.Thread(target=s.recover_outbox) for s in schedulers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == len(set(seen)) == 5000


@pytest.mark.both_dbs
def test_purge_forgets_old_message_ids_and_processed_rows(rt: Runtime, db: Engine) -> None:
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=8), now - timedelta(days=1)
    with session_scope(db) as s:
        s.execute(
            insert(IngestMessage),
            [
                {"message_id": "old", "received_at": old},
                {"message_id": "new", "received_at": recent},
            ],
        )
        s.execute(
            insert(OutboxRow),
            [
                {"signals": True, "created_at": old, "enqueued_at": old, "processed_at": old},
                {"signals": True, "created_at": old, "enqueued_at": old, "processed_at": None},
                {
                    "signals": True,
                    "created_at": recent,
                    "enqueued_at": recent,
                    "processed_at": recent,
                },
            ],
        )
    assert Scheduler(rt, enqueue=lambda ids: None).purge() == 2
    with session_scope(db) as s:
        assert list(s.scalars(select(IngestMessage.message_id))) == ["new"]
        assert s.scalar(select(func.count()).select_from(OutboxRow)) == 2


@pytest.mark.both_dbs
def test_purge_forgets_signals_after_30_days(rt: Runtime, db: Engine) -> None:
    now = datetime.now(UTC)
    with session_scope(db) as s:
        s.execute(
            insert(Signal),
            [
                {
                    "object_type": "account",
                    "object_id": 1,
                    "kind": "event",
                    "key": "login",
                    "detail": {},
                    "occurred_at": at,
                    "created_at": at,
                }
                for at in (now - timedelta(days=31), now - timedelta(days=29), now)
            ],
        )
    assert Scheduler(rt, enqueue=lambda ids: None).purge() == 1
    with session_scope(db) as s:
        assert s.scalar(select(func.count()).select_from(Signal)) == 2


@pytest.mark.both_dbs
def test_purge_forgets_slack_event_ids_after_a_day(rt: Runtime, db: Engine) -> None:
    from storage.queries import slack_events

    now = datetime.now(UTC)
    with session_scope(db) as s:
        slack_events.record(s, event_id="Ev_old", now=now - timedelta(days=2))
        slack_events.record(s, event_id="Ev_new", now=now - timedelta(hours=1))
    assert Scheduler(rt, enqueue=lambda ids: None).purge() == 1
    with session_scope(db) as s:  # a retry of the recent one is still recognised
        assert not slack_events.record(s, event_id="Ev_new", now=now)
        assert slack_events.record(s, event_id="Ev_old", now=now)
