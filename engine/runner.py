"""Running one step: claim it, check that it still should run, call its action with the
step's idempotency key, record the outcome and schedule what follows.

Every transition is a guarded UPDATE (storage.queries.steps), so a duplicated message, a
second worker or a worker that lost its lease changes nothing twice. The action is called
outside any transaction. Retries are rows (`scheduled` again with `attempt + 1` and a later
`due_at`), never Dramatiq retries; after MAX_ATTEMPTS the step fails and `on_failure`
decides. An at-most-once action is committed as `sending` before its call.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from engine import actions, enrollment, lifecycle, views
from engine.actions.base import Delivery, Done, Failed, Outcome, Retry, RunContext
from engine.clock import Clock
from engine.compiled import CompiledWorkflow, compile_version
from engine.http import Resolver
from engine.runtime import Runtime
from engine.settings import Settings
from storage.db import session_scope
from storage.queries import configuration
from storage.queries import enrollments as q
from storage.queries import steps as step_rows
from storage.workflow_models import Enrollment, Workflow, WorkflowVersion

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
MAX_BACKOFF = timedelta(hours=1)
PAUSED_KEY = "sends_paused"


@dataclass(frozen=True)
class Services:
    """What running a step needs of the process."""

    db: Engine
    clock: Clock
    settings: Settings
    resolver: Resolver

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.settings.step_lease_seconds)


def services(rt: Runtime) -> Services:
    """The process's runtime, as a step run needs it."""
    return Services(rt.db, rt.clock, rt.settings, rt.resolver)


def backoff(attempt: int, base_seconds: float) -> timedelta:
    """Exponential with full jitter over the upper half, capped at an hour: attempt 1 waits
    base..., attempt 2 twice that, and so on."""
    ceiling = min(base_seconds * 2 ** max(attempt - 1, 0), MAX_BACKOFF.total_seconds())
    return timedelta(seconds=ceiling * random.uniform(0.5, 1.0))


@dataclass(frozen=True)
class _Call:
    """A claimed step about to call its action (what the second transaction needs)."""

    step_id: int
    enrollment_id: int
    index: int
    attempt: int
    key: str
    compiled: CompiledWorkflow
    data: dict[str, Any]
    sending: bool


def run_step(svc: Services, step_id: int) -> list[int]:
    """Run step `step_id` if it is runnable (a no-op otherwise); returns ids of steps now due
    to enqueue once this returns (their rows are committed)."""
    with session_scope(svc.db) as session:
        call, due = _claim_and_check(session, svc, step_id)
    if call is None:
        return due
    step = call.compiled.definition.steps[call.index]
    action = actions.for_step(step)
    ctx = RunContext(
        data=call.data,
        step_index=call.index,
        idempotency_key=call.key,
        attempt=call.attempt,
        now=svc.clock.now(),
        settings=svc.settings,
        resolver=svc.resolver,
    )
    try:
        outcome: Outcome = action.run(step, ctx)
    except Exception as exc:  # a bug or an unexpected peer: retried like a transient failure
        log.exception("step %d (%s) raised", step_id, step.action)
        outcome = Retry(f"{type(exc).__name__}: {exc}")
    with session_scope(svc.db) as session:
        return _finish(session, svc, call, outcome)


def _claim_and_check(
    session: Session, svc: Services, step_id: int
) -> tuple[_Call | None, list[int]]:
    now = svc.clock.now()
    row = step_rows.claim(session, step_id=step_id, now=now, lease=svc.lease)
    if row is None:
        return None, []
    enrolled = session.get(Enrollment, row.enrollment_id)
    assert enrolled is not None
    if enrolled.status != "active":
        _settle(session, row, "cancelled", now)
        return None, []
    workflow = session.get(Workflow, enrolled.workflow_id)
    assert workflow is not None
    if configuration.get(session, key=PAUSED_KEY):
        _settle(session, row, "paused", now, final=False)
        _line(session, row, now, "paused", "waits: every send is paused (resume-all)")
        return None, []
    if workflow.status != "live" or workflow.deleted_at is not None:
        _settle(session, row, "held", now, final=False)
        why = "deleted" if workflow.deleted_at is not None else workflow.status
        _line(session, row, now, "held", f"held: the workflow is {why}")
        return None, []
    ruling = lifecycle.current(session)
    version = session.get(WorkflowVersion, enrolled.version_id)
    assert version is not None
    compiled = compile_version(version.id, version.document, ruling)
    index = row.step_index
    step = compiled.definition.steps[index]
    label = f"step {index + 1} ({step.action})"
    view = views.rule_views(
        session,
        object_type=enrolled.object_type,
        ids=[enrolled.object_id],
        aggregates=compiled.aggregates,
        with_account=compiled.uses_account,
        now=now,
    ).get(enrolled.object_id)
    if view is None:
        _settle(session, row, "cancelled", now)
        enrollment.exit_enrollments(
            session, exits=[(enrolled.id, "the record was deleted")], now=now
        )
        return None, []
    if compiled.exit_if is not None and compiled.exit_if.holds(view, now):
        reason = f"exit_if `{compiled.exit_if.text}` became true (checked before {label})"
        enrollment.exit_enrollments(session, exits=[(enrolled.id, reason)], now=now)
        _settle(session, row, "cancelled", now)
        return None, []
    resume = _resume_window_passed(workflow, compiled, row.due_at, now)
    if resume is not None:
        _settle(session, row, "skipped", now, error=resume)
        _line(session, row, now, "skipped", f"{label} skipped: {resume}")
        return None, _advance(session, svc, enrolled, compiled, index, now)
    condition = compiled.step_only_if[index]
    if condition is not None and not condition.holds(view, now):
        why = f"only_if `{condition.text}` is false"
        _settle(session, row, "skipped", now, error=why)
        _line(session, row, now, "skipped", f"{label} skipped: {why}")
        return None, _advance(session, svc, enrolled, compiled, index, now)
    data = views.template_data(
        session,
        object_type=enrolled.object_type,
        record_id=enrolled.object_id,
        health=lifecycle.Health(ruling.good, ruling.bad),
        event=(enrolled.trigger or {}).get("detail") if _is_event(enrolled) else None,
    )
    assert data is not None
    data["workflow"] = {
        "name": workflow.name,
        "description": compiled.definition.description,
        "object": workflow.object_type,
        "status": workflow.status,
    }
    sending = actions.for_step(step).delivery is Delivery.AT_MOST_ONCE
    if sending:
        step_rows.move(session, step_id=row.id, from_status="running", status="sending")
    return (
        _Call(
            row.id, enrolled.id, index, row.attempt, row.idempotency_key, compiled, data, sending
        ),
        [],
    )


def _is_event(enrolled: Enrollment) -> bool:
    return (enrolled.trigger or {}).get("kind") == "event"


def _resume_window_passed(
    workflow: Workflow, compiled: CompiledWorkflow, due_at: datetime, now: datetime
) -> str | None:
    """A step that came due while the workflow was disabled runs on re-enable only if it
    is overdue by less than `resume_window`."""
    if workflow.live_since is None or due_at >= workflow.live_since:
        return None
    late = now - due_at
    window = timedelta(seconds=compiled.definition.resume_window_seconds)
    if late < window:
        return None
    return (
        f"came due while the workflow was disabled and is {_span(late)} overdue "
        f"(resume_window is {compiled.definition.resume_window})"
    )


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 86400:
        return f"{seconds // 86400}d {seconds % 86400 // 3600}h"
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 60}m {seconds % 60}s"


def _settle(
    session: Session,
    row: Any,
    status: str,
    now: datetime,
    *,
    final: bool = True,
    error: str | None = None,
) -> None:
    values: dict[str, Any] = {"status": status, "lease_until": None}
    if final:
        values["finished_at"] = now
    if error is not None:
        values["error"] = error
    step_rows.move(session, step_id=row.id, from_status="running", **values)


def _line(
    session: Session,
    row: Any,
    now: datetime,
    kind: str,
    message: str,
    detail: Mapping[str, Any] | None = None,
) -> None:
    q.log(
        session,
        rows=[
            {
                "enrollment_id": row.enrollment_id,
                "at": now,
                "kind": kind,
                "step_index": row.step_index,
                "message": message,
                "detail": dict(detail or {}),
            }
        ],
    )


def _advance(
    session: Session,
    svc: Services,
    enrolled: Enrollment,
    compiled: CompiledWorkflow,
    index: int,
    now: datetime,
) -> list[int]:
    """After step `index` reached a final state: schedule the next (its delay counts from
    now), or complete the enrollment. Returns the next step's id when it is due now."""
    steps = compiled.definition.steps
    if index + 1 >= len(steps):
        ended = q.end(session, ids=[enrolled.id], status="completed", reason="completed", now=now)
        if ended:
            q.log(
                session,
                rows=[
                    {
                        "enrollment_id": enrolled.id,
                        "at": now,
                        "kind": "completed",
                        "message": "completed",
                    }
                ],
            )
        return []
    following = steps[index + 1]
    due_at = now + timedelta(seconds=following.delay_seconds)
    row = enrollment.step_row(enrolled.id, index + 1, due_at, now, svc.lease)
    [(step_id, status)] = step_rows.add(session, rows=[row])
    q.log(
        session,
        rows=[enrollment.scheduled_line(enrolled.id, index + 1, following.action, due_at, now)],
    )
    return [step_id] if status == "queued" else []


def _finish(session: Session, svc: Services, call: _Call, outcome: Outcome) -> list[int]:
    now = svc.clock.now()
    step = call.compiled.definition.steps[call.index]
    label = f"step {call.index + 1} ({step.action})"
    current = "sending" if call.sending else "running"

    def moved(**values: Any) -> bool:
        return step_rows.move(
            session, step_id=call.step_id, from_status=current, at_attempt=call.attempt, **values
        )

    enrolled = session.get(Enrollment, call.enrollment_id)
    assert enrolled is not None
    ref = _Ref(call.step_id, call.enrollment_id, call.index)
    if isinstance(outcome, Retry) and call.attempt + 1 >= MAX_ATTEMPTS:
        outcome = Failed(f"gave up after {MAX_ATTEMPTS} attempts; last: {outcome.error}")
    if isinstance(outcome, Done):
        if not moved(
            status="done",
            result=dict(outcome.result),
            error=None,
            lease_until=None,
            finished_at=now,
        ):
            return _lost(call)
        _line(session, ref, now, "run", f"{label}: {outcome.summary}", outcome.result)
        return _advance(session, svc, enrolled, call.compiled, call.index, now)
    if isinstance(outcome, Retry):
        at = outcome.at or now + backoff(call.attempt + 1, svc.settings.step_retry_seconds)
        at = min(max(at, now), now + MAX_BACKOFF)
        if not moved(
            status="scheduled",
            attempt=call.attempt + 1,
            due_at=at,
            error=outcome.error,
            lease_until=None,
        ):
            return _lost(call)
        _line(
            session,
            ref,
            now,
            "retried",
            f"{label} attempt {call.attempt + 1} failed: {outcome.error}; "
            f"retrying at {at:%Y-%m-%d %H:%M:%S} UTC",
        )
        return []
    assert isinstance(outcome, Failed)
    if not moved(status="failed", error=outcome.error, lease_until=None, finished_at=now):
        return _lost(call)
    _line(session, ref, now, "failed", f"{label} failed: {outcome.error}")
    if call.compiled.definition.on_failure == "continue":
        return _advance(session, svc, enrolled, call.compiled, call.index, now)
    enrollment.exit_enrollments(
        session,
        exits=[(enrolled.id, f"{label} failed (on_failure: stop)")],
        now=now,
        status="failed",
    )
    return []


@dataclass(frozen=True)
class _Ref:
    id: int
    enrollment_id: int
    step_index: int


def _lost(call: _Call) -> list[int]:
    log.warning(
        "step run %d: its lease ran out while it ran and another worker took it over; "
        "this outcome is dropped (the effect carried the same idempotency key)",
        call.step_id,
    )
    return []


# -- pause-all / resume-all ----------------------------------------------------------------------
def paused(session: Session) -> bool:
    return bool(configuration.get(session, key=PAUSED_KEY))


def pause_all(session: Session, *, by: str, now: datetime) -> bool:
    """Stop every send: steps coming due wait as `paused`. False if already paused."""
    if paused(session):
        return False
    configuration.put(session, key=PAUSED_KEY, value={"by": by, "at": now.isoformat()}, now=now)
    return True


def resume_all(session: Session, *, now: datetime) -> int:
    """Lift the pause: paused steps are scheduled again (as due as they were); returns how
    many."""
    configuration.put(session, key=PAUSED_KEY, value=None, now=now)
    return step_rows.unpause(session)
