"""The scheduler loop: due steps to the queue, recovery of work whose message or worker was
lost (outbox rows, step runs past their lease), the periodic refresh of segments that time
alone can move (whose signals enroll like any other), and housekeeping.

PostgreSQL holds every pending thing; this loop only turns rows into messages. Several loops
may run at once: rows are claimed by guarded UPDATEs (FOR UPDATE SKIP LOCKED on PostgreSQL).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from dramatiq.brokers.stub import StubBroker

from engine import (
    draft_messages,
    enrollment,
    failure_alerts,
    lifecycle,
    metrics,
    retention,
    runner,
    segments,
    stats_rollup,
)
from engine import drafts as draft_decisions
from engine.runtime import Runtime
from storage.db import session_scope
from storage.models import Segment
from storage.queries import alerts, drafts, enrollments, locks, outbox, slack_events, slack_forms
from storage.queries import segments as segment_rows
from storage.queries import signals as signal_rows
from storage.queries import steps as step_rows

log = logging.getLogger(__name__)

OUTBOX_POLL_SECONDS = 2
MESSAGE_ID_RETENTION = timedelta(days=7)
PROCESSED_OUTBOX_RETENTION = timedelta(days=7)
SIGNAL_RETENTION = timedelta(days=30)
SLACK_EVENT_RETENTION = timedelta(days=1)  # Slack retries within minutes
SLACK_FORM_RETENTION = timedelta(days=7)  # a wizard left open, an import not applied
ALERT_CHECK_EVERY = timedelta(minutes=1)


class Scheduler:
    """One loop per process; several may run at once (rows are claimed with SKIP LOCKED)."""

    def __init__(
        self,
        rt: Runtime,
        *,
        enqueue: Callable[[Sequence[int]], None],
        tick_seconds: float = 1.0,
        purge_every: timedelta = timedelta(hours=1),
        poll_outbox: bool | None = None,
        enqueue_steps: Callable[[Sequence[int]], None] | None = None,
        steps_waiting: Callable[[], int] | None = None,
        dispatch_batch: int = 1000,
    ) -> None:
        """`poll_outbox` (default: when the broker is in-process, i.e. no REDIS_URL) takes
        every outbox row left unprocessed for 2 s, so work other processes committed (an
        import, another web process) is evaluated here; with Redis only rows whose message
        is overdue (OUTBOX_RECOVERY_SECONDS) are re-enqueued. `enqueue_steps` sends step run
        ids to the workers (without it this loop dispatches no step); `steps_waiting` says how
        many step messages wait for a worker (a queued row past its lease is requested again
        only when none do: until then its message is more likely waiting than lost)."""
        self._rt = rt
        self._enqueue = enqueue
        self._enqueue_steps = enqueue_steps
        self._steps_waiting = steps_waiting or (lambda: 0)
        self._batch = dispatch_batch
        self._lease = timedelta(seconds=rt.settings.step_lease_seconds)
        self._tick = tick_seconds
        self._purge_every = purge_every
        self._last_purge: datetime | None = None
        self._last_rollup: datetime | None = None
        self._last_alert_check: datetime | None = None
        self._retention = retention.Retention(rt.db, rt.settings)
        if poll_outbox is None:
            poll_outbox = isinstance(rt.broker, StubBroker)
        self._recovery = timedelta(
            seconds=OUTBOX_POLL_SECONDS if poll_outbox else rt.settings.outbox_recovery_seconds
        )

    def recover_outbox(self) -> int:
        """Re-enqueue unprocessed outbox rows whose message is overdue; returns how many."""
        now = self._rt.clock.now()
        overdue = now - self._recovery
        total = 0
        while True:
            with session_scope(self._rt.db) as session:
                ids = outbox.claim_stale(session, enqueued_before=overdue, now=now)
            if not ids:
                return total
            self._enqueue(ids)
            total += len(ids)

    def dispatch_steps(self) -> int:
        """Queue every step run whose `due_at` has come, a batch per transaction, each batch
        enqueued after its commit; none while every send is paused. Returns how many."""
        if self._enqueue_steps is None:
            return 0
        total = 0
        while True:
            now = self._rt.clock.now()
            with session_scope(self._rt.db) as session:
                if runner.paused(session):
                    return total
                ids = step_rows.dispatch_due(session, now=now, lease=self._lease, limit=self._batch)
                metrics.scheduler_lag(alerts.due_times(session, step_ids=ids), now)
            if not ids:
                return total
            self._enqueue_steps(ids)
            total += len(ids)

    def recover_steps(self) -> int:
        """Step runs past their lease: a queued one whose message was lost (a flushed Redis:
        asked only when no step message waits) or a running one whose worker died is
        requested again, with the same idempotency key;
        a `sending` one (an at-most-once call cut short) becomes `unknown`, never resent."""
        if self._enqueue_steps is None:
            return 0
        total = 0
        now = self._rt.clock.now()
        with session_scope(self._rt.db) as session:
            cut_short = step_rows.mark_unknown(session, now=now)
            made = drafts.status_of(session, step_ids=[row.id for row in cut_short])
            lines = []
            for row in cut_short:
                # The email is made (a draft row, committed) before it is sent: with none, or
                # one already marked sent, nothing is in doubt and the step simply runs again.
                status = made.get(row.id)
                if status in (None, "sent"):
                    step_rows.move(
                        session,
                        step_id=row.id,
                        from_status="unknown",
                        status="scheduled",
                        due_at=now,
                        finished_at=None,
                    )
                    why = "before the email was made" if status is None else "after it was sent"
                    message = f"step {row.step_index + 1}: the worker stopped {why}; run again"
                else:
                    message = (
                        f"step {row.step_index + 1}: the worker stopped while sending; it may "
                        "have been sent and is not sent again by itself"
                    )
                lines.append(
                    {
                        "enrollment_id": row.enrollment_id,
                        "at": now,
                        "kind": "unknown" if status not in (None, "sent") else "recovered",
                        "step_index": row.step_index,
                        "message": message,
                    }
                )
            drafts.unknown_for_steps(session, step_ids=[row.id for row in cut_short], now=now)
            enrollments.log(session, rows=lines)
        queued = self._steps_waiting() == 0
        while True:
            with session_scope(self._rt.db) as session:
                ids = step_rows.recover(
                    session, now=now, lease=self._lease, limit=self._batch, queued=queued
                )
            if not ids:
                break
            log.warning("step runs past their lease, requested again: %s", ids[:20])
            self._enqueue_steps(ids)
            total += len(ids)
        return total

    def expire_drafts(self) -> int:
        """Drafts nobody decided on within `approval_timeout` expire; their steps run on
        (a skip). Returns how many."""
        with session_scope(self._rt.db) as session:
            ids = draft_decisions.expire_due(session, now=self._rt.clock.now())
        return len(ids)  # due now: the next dispatch takes them

    def reconcile_gmail(self) -> int:
        """Gmail sends left unknown are looked up in Sent (engine.email.deliver)."""
        from engine.email.deliver import reconcile_gmail

        rt = self._rt
        return reconcile_gmail(rt.db, rt.settings, rt.resolver, rt.clock.now())

    def refresh_segments(self) -> int:
        """Recompute, set-wise, each time-dependent segment whose refresh is due; the
        difference becomes enter / leave signals. Returns how many segments were refreshed."""
        now = self._rt.clock.now()
        due_before = now - timedelta(seconds=self._rt.settings.segment_refresh_seconds)
        with session_scope(self._rt.db) as session:
            timed = {c.id for c in segments.load(session) if c.deps.time_dependent}
            stale = [
                s.id
                for s in segment_rows.all_segments(session)
                if s.id in timed and s.refreshed_at <= due_before
            ]
        done = 0
        for segment_id in stale:
            with session_scope(self._rt.db) as session:
                # Another scheduler may hold it, or have just refreshed it: skip, never wait.
                if not locks.try_segment(session, segment_id):
                    continue
                segment = session.get(Segment, segment_id)
                if segment is None or segment.refreshed_at > due_before:
                    continue
                refreshed = segments.refresh(session, segment=segment, now=now)
                due_steps: list[int] = []
                if refreshed is not None and refreshed.signals:
                    made = enrollment.on_signals(
                        session,
                        signals=refreshed.signals,
                        lifecycle=lifecycle.current(session),
                        now=now,
                        lease=self._lease,
                    )
                    due_steps = made.due_steps
                    metrics.signals(refreshed.signals)
                    metrics.ENROLLMENTS.labels(source="refresh").inc(len(made.enrolled))
            if due_steps and self._enqueue_steps is not None:
                self._enqueue_steps(due_steps)
            if refreshed is not None:
                done += 1
                if refreshed.entered or refreshed.left:
                    log.info(
                        "segment %r refreshed: %d entered, %d left",
                        refreshed.segment,
                        refreshed.entered,
                        refreshed.left,
                    )
        return done

    def roll_up_stats(self, force: bool = False) -> int:
        """Every ROLLUP_EVERY (or now, forced): re-aggregate the statistics' days touched
        since the last pass (engine.stats_rollup). Returns how many workflow days."""
        now = self._rt.clock.now()
        if not force and self._last_rollup and now - self._last_rollup < stats_rollup.ROLLUP_EVERY:
            return 0
        self._last_rollup = now
        with session_scope(self._rt.db) as session:
            return stats_rollup.roll_up(session, now=now, timezone=self._rt.settings.timezone)

    def alert_failures(self, force: bool = False) -> int:
        """Every ALERT_CHECK_EVERY (or now, forced): alert once about each workflow whose
        steps keep failing (engine.failure_alerts). Returns how many alerts were sent."""
        now = self._rt.clock.now()
        last = self._last_alert_check
        if not force and last is not None and now - last < ALERT_CHECK_EVERY:
            return 0
        self._last_alert_check = now
        return failure_alerts.check(self._rt.db, self._rt.settings, now)

    def purge(self) -> int:
        """Forget messageIds and processed outbox rows older than 7 days, Slack event ids
        older than a day, Slack forms untouched for a week, and signals older than 30 days
        (workflows act on a signal within seconds; reports read enrollments)."""
        now = self._rt.clock.now()
        with session_scope(self._rt.db) as session:
            gone = outbox.purge(
                session,
                processed_before=now - PROCESSED_OUTBOX_RETENTION,
                messages_before=now - MESSAGE_ID_RETENTION,
            )
            gone += slack_events.purge(session, before=now - SLACK_EVENT_RETENTION)
            gone += slack_forms.purge(session, before=now - SLACK_FORM_RETENTION)
            return gone + signal_rows.purge(session, before=now - SIGNAL_RETENTION)

    def tick(self) -> None:
        """One round of every periodic duty."""
        self.dispatch_steps()
        self.recover_steps()
        self.expire_drafts()
        self.reconcile_gmail()
        recovered = self.recover_outbox()
        if recovered:
            log.warning("re-enqueued %d outbox rows left unprocessed", recovered)
        self.refresh_segments()
        draft_messages.sync(self._rt.db, self._rt.settings, self._rt.clock.now())
        self.roll_up_stats()
        self.alert_failures()
        now = self._rt.clock.now()
        if self._last_purge is None or now - self._last_purge >= self._purge_every:
            self._last_purge = now
            self.purge()
        self._retention.tick(now)  # hourly, then a second per tick until the backlog is gone

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
