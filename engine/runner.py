"""Running one step: claim it, check that it still should run, call its action with the
step's idempotency key, record the outcome and schedule what follows.

Every transition is a guarded UPDATE (storage.queries.steps), so a duplicated message, a
second worker or a worker that lost its lease changes nothing twice. The action is called
outside any transaction. Retries are rows (`scheduled` again with `attempt + 1` and a later
`due_at`), never Dramatiq retries; after MAX_ATTEMPTS the step fails and `on_failure`
decides. An at-most-once action is committed as `sending` before its call. What each
outcome does to its step is engine.outcomes.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from engine import actions, enrollment, lifecycle, metrics, views, webhook_secrets
from engine import outcomes as outcomes_mod
from engine.actions.base import (
    Outcome,
    Retry,
    RunContext,
)
from engine.clock import Clock
from engine.compiled import CompiledWorkflow, compile_version
from engine.http import Resolver
from engine.ingest.schema import InvalidPayload, parse_call
from engine.ingest.writer import commit_changes
from engine.logs import log_context
from engine.outcomes import Call, Writes
from engine.rules.records import RecordValues
from engine.runtime import Runtime
from engine.settings import Settings
from storage.db import session_scope
from storage.queries import configuration, drafts
from storage.queries import enrollments as q
from storage.queries import steps as step_rows
from storage.workflow_models import Enrollment, Workflow

log = logging.getLogger(__name__)

CALL_THREADS = 8  # a batch's actions run at most this many at once
PAUSED_KEY = "sends_paused"


@dataclass(frozen=True)
class Services:
    """What running a step needs of the process."""

    db: Engine
    clock: Clock
    settings: Settings
    resolver: Resolver
    # Sends outbox ids for evaluation (without it, the scheduler's outbox recovery finds them).
    enqueue_evaluation: Callable[[Sequence[int]], None] | None = None

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.settings.step_lease_seconds)

    def record_change(self, call: Mapping[str, Any]) -> None:
        """Store one Segment-spec call as ingestion does, then have it evaluated."""
        now = self.clock.now()
        try:
            change = parse_call(dict(call), now=now, stages=lifecycle.load_stages(self.db))
        except InvalidPayload as exc:
            raise ValueError(str(exc)) from None
        applied = commit_changes(self.db, [change], clock=self.clock)
        if applied.outbox_ids and self.enqueue_evaluation is not None:
            self.enqueue_evaluation(applied.outbox_ids)


def services(
    rt: Runtime, enqueue_evaluation: Callable[[Sequence[int]], None] | None = None
) -> Services:
    """The process's runtime, as a step run needs it."""
    return Services(rt.db, rt.clock, rt.settings, rt.resolver, enqueue_evaluation)


def run_step(svc: Services, step_id: int) -> list[int]:
    """Run step `step_id` if it is runnable (a no-op otherwise); see `run_steps`."""
    return run_steps(svc, [step_id])


def run_steps(svc: Services, step_ids: Sequence[int]) -> list[int]:
    """Run these steps, each only if it is still to run (a duplicated id is a no-op), in
    three moves: one transaction claims and checks them all, the actions are called outside
    any transaction, one transaction records every outcome. Returns the ids of the steps now
    due, to enqueue once this returns (their rows are committed)."""
    with session_scope(svc.db) as session:
        calls, due = _claim_and_check_many(session, svc, step_ids)
    if not calls:
        return due
    if len(calls) == 1:
        outcomes = [(calls[0], _call(svc, calls[0]))]
    else:  # the calls wait on their peers together, not one after another
        outcomes = list(zip(calls, _calls().map(partial(_call, svc), calls), strict=True))
    with session_scope(svc.db) as session:
        return due + outcomes_mod.record(
            session,
            outcomes,
            now=svc.clock.now(),
            lease=svc.lease,
            retry_seconds=svc.settings.step_retry_seconds,
        )


@functools.cache
def _calls() -> ThreadPoolExecutor:
    """The process's threads for a batch's action calls (made on first use)."""
    return ThreadPoolExecutor(max_workers=CALL_THREADS, thread_name_prefix="workflowbot-action")


def _call(svc: Services, call: Call) -> Outcome:
    """Call the step's action (in a pool thread: the log context is set here, per call)."""
    with log_context(
        workflow_id=call.workflow_id, enrollment_id=call.enrollment_id, step_run_id=call.step_id
    ):
        step = call.compiled.definition.steps[call.index]
        started = time.monotonic()
        try:
            return _run_action(svc, call)
        finally:
            metrics.STEP_SECONDS.labels(action=step.action).observe(time.monotonic() - started)


def _run_action(svc: Services, call: Call) -> Outcome:
    step = call.compiled.definition.steps[call.index]
    ctx = RunContext(
        data=call.data,
        step_index=call.index,
        idempotency_key=call.key,
        attempt=call.attempt,
        now=svc.clock.now(),
        settings=svc.settings,
        resolver=svc.resolver,
        record_change=svc.record_change,
        db=svc.db,
        clock=svc.clock,
        step_run_id=call.step_id,
        enrollment_id=call.enrollment_id,
        workflow_id=call.workflow_id,
        record_id=call.record_id,
        first_call=call.first_call,
        kept=call.kept,
        signing_keys=call.signing_keys,
    )
    try:
        return actions.for_step(step).run(step, ctx)
    except Exception as exc:  # a bug or an unexpected peer: retried like a transient failure
        log.exception("step %d (%s) raised", call.step_id, step.action)
        return Retry(f"{type(exc).__name__}: {exc}")


def _claim_and_check(
    session: Session, svc: Services, step_id: int
) -> tuple[Call | None, list[int]]:
    """Claim one step and check it (what a worker does before calling its action)."""
    calls, due = _claim_and_check_many(session, svc, [step_id])
    return (calls[0] if calls else None), due


def _claim_and_check_many(
    session: Session, svc: Services, step_ids: Sequence[int]
) -> tuple[list[Call], list[int]]:
    now = svc.clock.now()
    rows = step_rows.claim_many(session, step_ids=step_ids, now=now, lease=svc.lease)
    if not rows:
        return [], []
    enrolled = {
        e.id: e
        for e in session.scalars(
            select(Enrollment).where(Enrollment.id.in_({r.enrollment_id for r in rows}))
        )
    }
    flows = {
        w.id: w
        for w in session.scalars(
            select(Workflow).where(Workflow.id.in_({e.workflow_id for e in enrolled.values()}))
        )
    }
    found = configuration.get_many(session, keys=[PAUSED_KEY, *lifecycle.KEYS])
    ruling = lifecycle.from_configuration(found)
    writes = Writes()
    ready: list[tuple[Any, Enrollment, Workflow]] = []
    for row in rows:
        e = enrolled[row.enrollment_id]
        workflow = flows[e.workflow_id]
        if e.status != "active":
            _settle(session, row, "cancelled", now)
        elif found.get(PAUSED_KEY):
            _settle(session, row, "paused", now, final=False)
            writes.line(row, now, "paused", "waits: every send is paused (resume-all)")
        elif workflow.status != "live" or workflow.deleted_at is not None:
            _settle(session, row, "held", now, final=False)
            why = "deleted" if workflow.deleted_at is not None else workflow.status
            writes.line(row, now, "held", f"held: the workflow is {why}")
        else:
            ready.append((row, e, workflow))
    documents = q.version_documents(session, version_ids={e.version_id for _, e, _ in ready})
    compiled = {vid: compile_version(vid, doc, ruling) for vid, doc in documents.items()}
    record_views = _views(session, [(e, compiled[e.version_id]) for _, e, _ in ready], now)
    health = lifecycle.Health(ruling.good, ruling.bad)
    # A step with a draft runs again on its decision (approve, discard, expiry): its only_if
    # and resume window were checked when the draft was made.
    decided = drafts.status_of(session, step_ids=[row.id for row, _, _ in ready])
    calls: list[Call] = []
    exits: list[tuple[int, str]] = []
    to_call: list[tuple[Any, Enrollment, Workflow, CompiledWorkflow]] = []
    for row, e, workflow in ready:
        flow = compiled[e.version_id]
        index = row.step_index
        step = flow.definition.steps[index]
        label = f"step {index + 1} ({step.action})"
        view = record_views.get((e.object_type, e.object_id))
        if view is None:
            _settle(session, row, "cancelled", now)
            exits.append((e.id, "the record was deleted"))
            continue
        if flow.exit_if is not None and flow.exit_if.holds(view, now):
            _settle(session, row, "cancelled", now)
            exits.append(
                (e.id, f"exit_if `{flow.exit_if.text}` became true (checked before {label})")
            )
            continue
        late = None if row.id in decided else _resume_window_passed(workflow, flow, row.due_at, now)
        condition = None if row.id in decided else flow.step_only_if[index]
        if late is None and condition is not None and not condition.holds(view, now):
            late = f"only_if `{condition.text}` is false"
        if late is not None:
            _settle(session, row, "skipped", now, error=late)
            metrics.step_outcome(step.action, "skipped")
            writes.line(row, now, "skipped", f"{label} skipped: {late}")
            writes.advance(svc.lease, e.id, flow, index, now)
            continue
        to_call.append((row, e, workflow, flow))
    rendered = views.template_data_many(
        session,
        wanted=[
            (e.object_type, e.object_id, (e.trigger or {}).get("detail") if _is_event(e) else None)
            for _, e, _, _ in to_call
        ],
        health=health,
    )
    keys = webhook_secrets.signing(
        session,
        workflow_ids={
            e.workflow_id
            for row, e, _, flow in to_call
            if actions.for_step(flow.definition.steps[row.step_index]).signs_with_workflow_secret
        },
        settings=svc.settings,
        now=now,
    )
    for (row, e, workflow, flow), data in zip(to_call, rendered, strict=True):
        if data is None:  # deleted since its rules were read
            _settle(session, row, "cancelled", now)
            exits.append((e.id, "the record was deleted"))
            continue
        step = flow.definition.steps[row.step_index]
        data["workflow"] = {
            "name": workflow.name,
            "description": flow.definition.description,
            "object": workflow.object_type,
            "status": workflow.status,
        }
        sending = actions.for_step(step).sends_now(step, decided.get(row.id))
        if sending:
            step_rows.move(session, step_id=row.id, from_status="running", status="sending")
        calls.append(
            Call(
                row.id,
                e.id,
                e.workflow_id,
                e.object_id,
                row.step_index,
                row.attempt,
                row.idempotency_key,
                flow,
                data,
                sending,
                first_call=row.attempt == 0 and row.claims <= 1,
                kept=(row.result or {}).get("later", {}),
                signing_keys=tuple(keys.get(e.workflow_id, ())),
            )
        )
    enrollment.exit_enrollments(session, exits=exits, now=now)
    return calls, writes.write(session, now)


def _views(
    session: Session, enrolled: Sequence[tuple[Enrollment, CompiledWorkflow]], now: datetime
) -> dict[tuple[str, int], RecordValues]:
    """Each enrolled record as its workflow's rules read it (one query per object type)."""
    found: dict[tuple[str, int], RecordValues] = {}
    for object_type in ("contact", "account"):
        mine = [(e, c) for e, c in enrolled if e.object_type == object_type]
        if not mine:
            continue
        read = views.rule_views(
            session,
            object_type=object_type,
            ids={e.object_id for e, _ in mine},
            aggregates=tuple(dict.fromkeys(a for _, c in mine for a in c.aggregates)),
            with_account=any(c.uses_account for _, c in mine),
            now=now,
        )
        found |= {(object_type, rid): view for rid, view in read.items()}
    return found


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
