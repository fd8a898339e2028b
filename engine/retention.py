"""Retention: events, and finished enrollments, older than their configured age are deleted in
small batches, each batch its own short transaction, so no table is locked for long.

An event goes when its `timestamp` is older than RETENTION_EVENTS_DAYS; an enrollment when it
is finished (completed, exited or failed) and `ended_at` is older than
RETENTION_ENROLLMENTS_DAYS, its step runs, log lines, drafts and their email events with it
(the foreign keys cascade). An active enrollment is never touched. 0 keeps rows forever.
Statistics already rolled up into `stats_days` keep their figures.

Every batch is found through an index: events per event name (`ix_events_name_time`, the names
walked one `min()` at a time), enrollments per workflow (`ix_enrollments_workflow_ended`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, CursorResult, Engine, delete, func, select

from engine.settings import Settings
from storage.db import session_scope
from storage.models import Event
from storage.workflow_models import Enrollment, Workflow

log = logging.getLogger(__name__)

BATCH_SIZE = 5000
FINISHED = ("completed", "exited", "failed")
PRUNE_EVERY = timedelta(hours=1)
TICK_BUDGET_SECONDS = 1.0  # pruning the scheduler does per tick; the rest waits for the next


@dataclass
class Pruned:
    """What one pass deleted (or, dry, would delete); `done` is False when it stopped early."""

    events: int = 0
    enrollments: int = 0
    batches: int = 0
    done: bool = True


@dataclass(frozen=True)
class _Cutoffs:
    events: datetime | None
    enrollments: datetime | None


def cutoffs(settings: Settings, now: datetime) -> _Cutoffs:
    """The times before which rows go (None: that kind is kept forever)."""
    ev, en = settings.retention_events_days, settings.retention_enrollments_days
    return _Cutoffs(
        events=now - timedelta(days=ev) if ev else None,
        enrollments=now - timedelta(days=en) if en else None,
    )


def _event_names(db: Engine) -> Iterator[str]:
    """Every event name, each found by one indexed min() (a loose index scan)."""
    last: str | None = None
    while True:
        with session_scope(db) as session:
            query = select(func.min(Event.name))
            if last is not None:
                query = query.where(Event.name > last)
            name = session.scalar(query)
        if name is None:
            return
        yield name
        last = name


def _workflow_ids(db: Engine) -> list[int]:
    with session_scope(db) as session:
        return list(session.scalars(select(Workflow.id).order_by(Workflow.id)))


def _old_events(name: str, before: datetime) -> ColumnElement[bool]:
    return (Event.name == name) & (Event.timestamp < before)


def _old_enrollments(workflow_id: int, before: datetime) -> ColumnElement[bool]:
    return (
        (Enrollment.workflow_id == workflow_id)
        & (Enrollment.ended_at < before)
        & Enrollment.status.in_(FINISHED)
    )


def count(db: Engine, *, settings: Settings, now: datetime) -> Pruned:
    """What `prune` would delete now, deleting nothing."""
    cut = cutoffs(settings, now)
    names = list(_event_names(db)) if cut.events is not None else []
    workflow_ids = _workflow_ids(db) if cut.enrollments is not None else []
    found = Pruned()
    with session_scope(db) as session:
        for name in names:
            assert cut.events is not None
            query = select(func.count()).select_from(Event).where(_old_events(name, cut.events))
            found.events += session.scalar(query) or 0
        for workflow_id in workflow_ids:
            assert cut.enrollments is not None
            where = _old_enrollments(workflow_id, cut.enrollments)
            query = select(func.count()).select_from(Enrollment).where(where)
            found.enrollments += session.scalar(query) or 0
    return found


def prune(
    db: Engine,
    *,
    settings: Settings,
    now: datetime,
    batch_size: int = BATCH_SIZE,
    budget_seconds: float | None = None,
    pause_seconds: float = 0.0,
    monotonic: Callable[[], float] = time.monotonic,
) -> Pruned:
    """Delete what retention says is old, `batch_size` rows per transaction; with
    `budget_seconds`, stop after the batch that spends it (`done` False: call again)."""
    cut = cutoffs(settings, now)
    started = monotonic()
    result = Pruned()

    def spent() -> bool:
        return budget_seconds is not None and monotonic() - started >= budget_seconds

    def batches(model: type[Event] | type[Enrollment], where: ColumnElement[bool]) -> int:
        gone = 0
        while True:  # at least one batch per call, so a small budget still makes progress
            ids = select(model.id).where(where).limit(batch_size)
            with session_scope(db) as session:
                done: CursorResult[Any] = session.execute(  # type: ignore[assignment]
                    delete(model).where(model.id.in_(ids.scalar_subquery())),
                    execution_options={"synchronize_session": False},
                )
                deleted = done.rowcount or 0
            result.batches += 1
            gone += deleted
            if deleted < batch_size:
                return gone
            if spent():
                result.done = False
                return gone
            if pause_seconds:
                time.sleep(pause_seconds)  # let other writers in between batches

    def jobs() -> Iterator[tuple[str, type[Event] | type[Enrollment], ColumnElement[bool]]]:
        if cut.events is not None:
            for name in _event_names(db):
                yield "events", Event, _old_events(name, cut.events)
        if cut.enrollments is not None:
            for workflow_id in _workflow_ids(db):
                yield "enrollments", Enrollment, _old_enrollments(workflow_id, cut.enrollments)

    for kind, model, where in jobs():
        if result.batches and spent():
            result.done = False
            return result
        gone = batches(model, where)
        if kind == "events":
            result.events += gone
        else:
            result.enrollments += gone
        if not result.done:
            return result
    return result


class Retention:
    """The scheduler's duty: every PRUNE_EVERY, prune for at most TICK_BUDGET_SECONDS per
    tick, carrying on next tick until nothing old is left."""

    def __init__(
        self,
        db: Engine,
        settings: Settings,
        *,
        every: timedelta = PRUNE_EVERY,
        budget_seconds: float = TICK_BUDGET_SECONDS,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self._db, self._settings = db, settings
        self._every, self._budget, self._batch = every, budget_seconds, batch_size
        self._last: datetime | None = None
        self._unfinished = False

    def tick(self, now: datetime) -> Pruned | None:
        """Prune if due or unfinished; None when there was nothing to do this tick."""
        due = self._last is None or now - self._last >= self._every
        if not (due or self._unfinished):
            return None
        if due:
            self._last = now
        pruned = prune(
            self._db,
            settings=self._settings,
            now=now,
            batch_size=self._batch,
            budget_seconds=self._budget,
        )
        self._unfinished = not pruned.done
        if pruned.events or pruned.enrollments:
            log.info(
                "retention: pruned %d events and %d finished enrollments in %d batches%s",
                pruned.events,
                pruned.enrollments,
                pruned.batches,
                "" if pruned.done else " (more next tick)",
            )
        return pruned
