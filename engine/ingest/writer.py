"""Group commit for the web process: concurrent requests share one transaction.

PostgreSQL commits cap one-request-one-transaction at a few thousand per second; a writer
thread that takes every submission waiting at that moment and stores them together lifts
that cap and keeps requests' latency at one commit.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from engine.clock import Clock
from engine.ingest.apply import Applied, apply_changes
from engine.ingest.schema import Change

log = logging.getLogger(__name__)

TRANSIENT_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected


def commit_changes(
    db: Engine | Connection, changes: Sequence[Change], *, clock: Clock, signals: bool = True
) -> Applied:
    """Apply changes in one transaction and commit, retrying a deadlock or serialization loss.

    Given an Engine it checks a connection out for the call; given a Connection (the writer
    keeps one) it runs the transaction on it.
    """
    if isinstance(db, Engine):
        with db.connect() as conn:
            return commit_changes(conn, changes, clock=clock, signals=signals)
    for attempt in range(3):
        try:
            with db.begin():
                return apply_changes(db, changes, now=clock.now(), signals=signals)
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
    """Writer threads that store submitted changes in group commits, then enqueue evaluation.

    Two threads by default: while one waits on the database, the other builds its group.
    Both take row locks in the same order (see `apply_changes`), so they never deadlock.
    """

    def __init__(
        self,
        db: Engine,
        *,
        clock: Clock,
        on_commit: Callable[[list[int]], None],
        threads: int = 2,
        max_group: int = 5000,
    ) -> None:
        self._db = db
        self._clock = clock
        self._on_commit = on_commit
        self._threads_wanted = threads if db.dialect.name == "postgresql" else 1
        self._max_group = max_group
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for n in range(self._threads_wanted):
            thread = threading.Thread(target=self._run, name=f"ingest-writer-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        """Store what was submitted, then stop the threads."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    def submit(self, changes: Sequence[Change]) -> Future[Applied]:
        """Queue changes for the next group commit; the future resolves after the commit."""
        future: Future[Applied] = Future()
        if not self._threads:
            future.set_exception(RuntimeError("the ingest writer is not running"))
            return future
        self._queue.put(_Item(changes, future))
        return future

    def _run(self) -> None:
        conn = _KeptConnection(self._db)
        try:
            while (group := self._next_group()) is not None:
                self._write(conn, group)
        finally:
            conn.close()

    def _next_group(self) -> list[_Item] | None:
        """Block for one submission, then take every other one already waiting (up to a cap)."""
        first = self._queue.get()
        if first is None:
            return None
        group, size = [first], len(first.changes)
        while size < self._max_group:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)  # this thread finishes the group; the stop waits its turn
                break
            group.append(item)
            size += len(item.changes)
        return group

    def _write(self, conn: _KeptConnection, group: list[_Item]) -> None:
        try:
            changes = [c for item in group for c in item.changes]
            try:
                applied = commit_changes(conn.get(), changes, clock=self._clock)
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
                # The database dropped the kept connection (restart, failover): once more, fresh.
                applied = commit_changes(conn.get(), changes, clock=self._clock)
        except Exception as exc:
            if len(group) > 1:
                # One bad submission must not fail the others: store each on its own.
                for item in group:
                    self._write(conn, [item])
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


class _KeptConnection:
    """A writer thread's own connection, kept between groups (no checkout or ping per commit)."""

    def __init__(self, db: Engine) -> None:
        self._db = db
        self._conn: Connection | None = None

    def get(self) -> Connection:
        if self._conn is not None and self._conn.invalidated:
            self.close()
        if self._conn is None:
            self._conn = self._db.connect()
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
