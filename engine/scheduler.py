"""The scheduler loop: recovery of outbox rows whose message was lost, and housekeeping.

Later issues add due steps and segment refresh to the same tick.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from engine.runtime import Runtime
from storage.db import session_scope
from storage.queries import outbox

log = logging.getLogger(__name__)

MESSAGE_ID_RETENTION = timedelta(days=7)
PROCESSED_OUTBOX_RETENTION = timedelta(days=7)


class Scheduler:
    """One loop per process; several may run at once (rows are claimed with SKIP LOCKED)."""

    def __init__(
        self,
        rt: Runtime,
        *,
        enqueue: Callable[[Sequence[int]], None],
        tick_seconds: float = 1.0,
        purge_every: timedelta = timedelta(hours=1),
    ) -> None:
        self._rt = rt
        self._enqueue = enqueue
        self._tick = tick_seconds
        self._purge_every = purge_every
        self._last_purge: datetime | None = None

    def recover_outbox(self) -> int:
        """Re-enqueue unprocessed outbox rows whose message is overdue; returns how many."""
        now = self._rt.clock.now()
        overdue = now - timedelta(seconds=self._rt.settings.outbox_recovery_seconds)
        total = 0
        while True:
            with session_scope(self._rt.db) as session:
                ids = outbox.claim_stale(session, enqueued_before=overdue, now=now)
            if not ids:
                return total
            self._enqueue(ids)
            total += len(ids)

    def purge(self) -> int:
        """Forget messageIds older than 7 days and processed outbox rows older than 7 days."""
        now = self._rt.clock.now()
        with session_scope(self._rt.db) as session:
            return outbox.purge(
                session,
                processed_before=now - PROCESSED_OUTBOX_RETENTION,
                messages_before=now - MESSAGE_ID_RETENTION,
            )

    def tick(self) -> None:
        """One round of every periodic duty."""
        recovered = self.recover_outbox()
        if recovered:
            log.warning("re-enqueued %d outbox rows left unprocessed", recovered)
        now = self._rt.clock.now()
        if self._last_purge is None or now - self._last_purge >= self._purge_every:
            self._last_purge = now
            self.purge()

    def run(self, stop: threading.Event) -> None:
        """Tick until `stop` is set; a failing tick is logged and the loop goes on."""
        log.info("scheduler started")
        while not stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("scheduler tick failed; retrying next tick")
            stop.wait(self._tick)
        log.info("scheduler stopped")
