"""Group commit for the web process: concurrent requests share one transaction.

PostgreSQL commits cap one-request-one-transaction at a few thousand per second; a single
writer thread that takes every submission waiting at that moment and stores them together
lifts that cap and keeps requests' latency at one commit.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from engine.clock import Clock
from engine.ingest.apply import Applied, apply_changes
from engine.ingest.schema import Change

log = logging.getLogger(__name__)

TRANSIENT_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected


def commit_changes(
    db: Engine, changes: Sequence[Change], *, clock: Clock, signals: bool = True
) -> Applied:
    """Apply changes in one transaction and commit, retrying a deadlock or serialization loss."""
    for attempt in range(3):
        try:
            with db.begin() as conn:
                return apply_changes(conn, changes, now=clock.now(), signals=signals)
        except DBAPIError as exc:
            sqlstate = getattr(exc.orig, "sqlstate", None)
            if attempt == 2 or sqlstate not in TRANSIENT_SQLSTATES:
                raise
            log.info("ingest transaction retried after %s", sqlstate)
    raise AssertionError("unreachable")


@dataclass(slots=True)
class _Item:
    changes: Sequence[Change]
    future: Future[Applied]


class IngestWriter:
    """One thread that stores submitted changes in group commits, then enqueues evaluation."""

    def __init__(
        self,
        db: Engine,
        *,
        clock: Clock,
        on_commit: Callable[[list[int]], None],
        max_group: int = 5000,
    ) -> None:
        self._db = db
        self._clock = clock
        self._on_commit = on_commit
        self._max_group = max_group
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Store what was submitted, then stop the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def submit(self, changes: Sequence[Change]) -> Future[Applied]:
        """Queue changes for the next group commit; the future resolves after the commit."""
        future: Future[Applied] = Future()
        if self._thread is None:
            future.set_exception(RuntimeError("the ingest writer is not running"))
            return future
        self._queue.put(_Item(changes, future))
        return future

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            group, size = [first], len(first.changes)
            while size < self._max_group:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                group.append(item)
                size += len(item.changes)
            self._write(group)

    def _write(self, group: list[_Item]) -> None:
        try:
            applied = commit_changes(
                self._db, [c for item in group for c in item.changes], clock=self._clock
            )
        except Exception as exc:
            if len(group) > 1:
                # One bad submission must not fail the others: store each on its own.
                for item in group:
                    self._write([item])
                return
            log.exception("ingest write failed")
            group[0].future.set_exception(exc)
            return
        self._enqueue(applied.outbox_ids)
        for item in group:
            item.future.set_result(applied)

    def _enqueue(self, outbox_ids: list[int]) -> None:
        if not outbox_ids:
            return
        try:
            self._on_commit(outbox_ids)
        except Exception:
            # Stored and committed: the scheduler re-enqueues outbox rows left unprocessed.
            log.exception("could not enqueue %d outbox rows; recovery will", len(outbox_ids))
