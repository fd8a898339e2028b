"""Recording what a batch's calls came to, in one transaction: each step moved by a guarded
UPDATE from the status its run left it in (so a step whose lease ran out and was taken over is
left to its new owner), the timeline lines, the next steps and the enrollments that ended.

| outcome   | the step becomes                                   | and then                      |
|-----------|----------------------------------------------------|-------------------------------|
| Done      | done (its result kept)                             | the next step, or completion  |
| Retry     | scheduled, attempt + 1, at Retry-After or backoff  | after MAX_ATTEMPTS: Failed    |
| Later     | scheduled at `at`, same attempt (not a failure)    |                               |
| Waiting   | waiting (an email draft for approval)              | a decision schedules it again |
| Attention | attention (needs a person; `detail` kept)          | released by a fix             |
| Unknown   | unknown (may have been sent; never resent)         | a person marks or resends     |
| Skipped   | skipped, with the reason                           | the next step, or completion  |
| Failed    | failed, with the error                             | `on_failure`: stop or go on   |
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from engine import enrollment, metrics
from engine.actions.base import (
    Attention,
    Done,
    Failed,
    Later,
    Outcome,
    Retry,
    Skipped,
    Unknown,
    Waiting,
)
from engine.compiled import CompiledWorkflow
from storage.queries import enrollments as q
from storage.queries import steps as step_rows
from storage.workflow_models import StepRun

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
MAX_BACKOFF = timedelta(hours=1)


def backoff(attempt: int, base_seconds: float) -> timedelta:
    """Exponential with full jitter over the upper half, capped at an hour: attempt 1 waits
    base..., attempt 2 twice that, and so on."""
    ceiling = min(base_seconds * 2 ** max(attempt - 1, 0), MAX_BACKOFF.total_seconds())
    return timedelta(seconds=ceiling * random.uniform(0.5, 1.0))


@dataclass(frozen=True)
class Call:
    """A claimed step about to call its action (what the second transaction needs)."""

    step_id: int
    enrollment_id: int
    workflow_id: int
    record_id: int
    index: int
    attempt: int
    key: str
    compiled: CompiledWorkflow
    data: dict[str, Any]
    sending: bool
    first_call: bool
    kept: Mapping[str, Any] = field(default_factory=dict)
    signing_keys: tuple[str, ...] = ()

    @property
    def step_index(self) -> int:  # what a timeline line is written about
        return self.index


@dataclass
class Writes:
    """What one transaction of a batch writes besides the guarded moves: timeline lines,
    the next steps to schedule, enrollments completed; and the step ids due now."""

    lines: list[dict[str, Any]] = field(default_factory=list)
    following: list[dict[str, Any]] = field(default_factory=list)
    completed: list[int] = field(default_factory=list)

    def line(
        self,
        row: Any,
        now: datetime,
        kind: str,
        message: str,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        self.lines.append(
            {
                "enrollment_id": row.enrollment_id,
                "at": now,
                "kind": kind,
                "step_index": row.step_index,
                "message": message,
                "detail": dict(detail or {}),
            }
        )

    def advance(
        self,
        lease: timedelta,
        enrollment_id: int,
        compiled: CompiledWorkflow,
        index: int,
        now: datetime,
    ) -> None:
        """After step `index` reached a final state: the next step (its delay counts from
        now), or the enrollment completes."""
        steps = compiled.definition.steps
        if index + 1 >= len(steps):
            self.completed.append(enrollment_id)
            return
        following = steps[index + 1]
        due_at = now + timedelta(seconds=following.delay_seconds)
        self.following.append(enrollment.step_row(enrollment_id, index + 1, due_at, now, lease))
        self.lines.append(
            enrollment.scheduled_line(enrollment_id, index + 1, following.action, due_at, now)
        )

    def write(self, session: Session, now: datetime) -> list[int]:
        """Write it all (a few statements for the whole batch); the steps due now."""
        due = [
            step_id
            for step_id, status in step_rows.add(session, rows=self.following)
            if status == "queued"
        ]
        if self.completed:
            ended = q.end(
                session, ids=self.completed, status="completed", reason="completed", now=now
            )
            self.lines += [
                {"enrollment_id": eid, "at": now, "kind": "completed", "message": "completed"}
                for eid in ended
            ]
        q.log(session, rows=self.lines)
        return due


@dataclass(frozen=True)
class _Move:
    """What an outcome does to its step: the row's new values, the timeline line (kind,
    message, detail) and what follows (advance to the next step, or fail the enrollment)."""

    values: dict[str, Any]
    line: tuple[str, str, Mapping[str, Any]] | None
    advance: bool = False
    fail: bool = False


def _move(call: Call, outcome: Outcome, label: str, now: datetime, retry_seconds: float) -> _Move:
    """Every outcome but Done (recorded for the whole batch in one statement)."""
    if isinstance(outcome, Retry):
        at = outcome.at or now + backoff(call.attempt + 1, retry_seconds)
        at = min(max(at, now), now + MAX_BACKOFF)
        message = (
            f"{label} attempt {call.attempt + 1} failed: {outcome.error}; "
            f"retrying at {at:%Y-%m-%d %H:%M:%S} UTC"
        )
        values = {"status": "scheduled", "attempt": call.attempt + 1, "due_at": at}
        return _Move(values | {"error": outcome.error}, ("retried", message, {}))
    if isinstance(outcome, Later):
        # Not counted as a claim: coming back later is no sign of an earlier call.
        values = {"status": "scheduled", "due_at": max(outcome.at, now)}
        values |= {"claims": StepRun.claims - 1, "result": {"later": dict(outcome.keep)}}
        return _Move(values, None)
    if isinstance(outcome, Waiting):
        line = ("waiting", f"{label}: {outcome.summary}", outcome.result)
        return _Move({"status": "waiting", "result": dict(outcome.result)}, line)
    if isinstance(outcome, Attention):
        values = {"status": "attention", "error": outcome.error, "result": dict(outcome.detail)}
        return _Move(values, ("attention", f"{label} needs attention: {outcome.error}", {}))
    if isinstance(outcome, Unknown):
        line = ("unknown", f"{label} may have been sent: {outcome.error}", {})
        return _Move({"status": "unknown", "error": outcome.error}, line)
    if isinstance(outcome, Skipped):
        values = {"status": "skipped", "error": outcome.reason, "finished_at": now}
        return _Move(values, ("skipped", f"{label} skipped: {outcome.reason}", {}), advance=True)
    assert isinstance(outcome, Failed)
    go_on = call.compiled.definition.on_failure == "continue"
    values = {"status": "failed", "error": outcome.error, "finished_at": now}
    line = ("failed", f"{label} failed: {outcome.error}", {})
    return _Move(values, line, advance=go_on, fail=not go_on)


def record(
    session: Session,
    outcomes: Sequence[tuple[Call, Outcome]],
    *,
    now: datetime,
    lease: timedelta,
    retry_seconds: float,
) -> list[int]:
    """Record each call's outcome (see the module's table); the ids of the steps due now."""
    writes = Writes()
    failed: list[tuple[int, str]] = []
    done = step_rows.finish_done(
        session,
        rows=[
            (c.step_id, "sending" if c.sending else "running", c.attempt, dict(o.result))
            for c, o in outcomes
            if isinstance(o, Done)
        ],
        now=now,
    )
    for call, outcome in outcomes:
        step = call.compiled.definition.steps[call.index]
        label = f"step {call.index + 1} ({step.action})"
        if isinstance(outcome, Retry) and call.attempt + 1 >= MAX_ATTEMPTS:
            outcome = Failed(f"gave up after {MAX_ATTEMPTS} attempts; last: {outcome.error}")
        metrics.step_outcome(step.action, outcome)
        if isinstance(outcome, Done):
            if call.step_id not in done:
                _lost(call)
                continue
            writes.line(call, now, "run", f"{label}: {outcome.summary}", outcome.result)
            writes.advance(lease, call.enrollment_id, call.compiled, call.index, now)
            continue
        move = _move(call, outcome, label, now, retry_seconds)
        if not step_rows.move(
            session,
            step_id=call.step_id,
            from_status="sending" if call.sending else "running",
            at_attempt=call.attempt,
            lease_until=None,
            **move.values,
        ):
            _lost(call)
            continue
        if move.line is not None:
            writes.line(call, now, *move.line)
        if move.advance:
            writes.advance(lease, call.enrollment_id, call.compiled, call.index, now)
        if move.fail:
            failed.append((call.enrollment_id, f"{label} failed (on_failure: stop)"))
    due = writes.write(session, now)
    enrollment.exit_enrollments(session, exits=failed, now=now, status="failed")
    return due


def _lost(call: Call) -> None:
    log.warning(
        "step run %d: its lease ran out while it ran and another worker took it over; "
        "this outcome is dropped (the effect carried the same idempotency key)",
        call.step_id,
    )
