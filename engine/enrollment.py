"""Who enrolls, and who leaves: signals matched against live workflows through the trigger
index, enrollments inserted once (the database's unique indexes decide), the first step
scheduled; `exit_if` checked on every evaluation of an enrolled record.

Semantics (workflow-format.md): a signal enrolls only if it happened at or after the
workflow went live; `once` means once per (workflow, record) ever; `every_time` never has two
active at once (the extra signal is logged on the active one) and `reenroll_after` spaces
them; a signal processed twice enrolls once.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import views
from engine.compiled import CompiledWorkflow, compile_version
from engine.rules.lifecycle import Lifecycle
from engine.rules.records import RecordValues
from engine.workflow_defs import ANY_KEY
from storage.models import Contact
from storage.queries import enrollments as q
from storage.queries import steps as step_rows
from storage.queries import workflows as workflow_rows
from storage.queries.signals import StoredSignal
from storage.workflow_models import Workflow

DEFAULT_LEASE = timedelta(seconds=300)


@dataclass(frozen=True)
class Candidate:
    """A record that may enroll, and why."""

    object_type: str
    object_id: int
    trigger: Mapping[str, Any]  # kind, key, detail
    reason: str  # the timeline's first line
    signal_id: int | None = None


@dataclass
class Outcome:
    """What an enrollment pass did: enrollments made, steps to enqueue now, lines skipped."""

    enrolled: list[int] = field(default_factory=list)
    due_steps: list[int] = field(default_factory=list)
    refused: dict[tuple[str, int], str] = field(default_factory=dict)

    def merge(self, other: Outcome) -> None:
        self.enrolled += other.enrolled
        self.due_steps += other.due_steps
        self.refused |= other.refused


def new_key() -> str:
    """A step's idempotency key: made once with its row, the same on every attempt."""
    return f"msg_{uuid.uuid4().hex}"


def describe(kind: str, key: str, detail: Mapping[str, Any]) -> str:
    """A signal in words, for the timeline."""
    match kind:
        case "segment_enter":
            return f'entered segment "{detail.get("segment", key)}"'
        case "segment_leave":
            return f'left segment "{detail.get("segment", key)}"'
        case "stage_enter":
            return f"stage became {detail.get('to', key)}"
        case "stage_leave":
            now = detail.get("to")
            return f"stage {key} left" + (f" (now {now})" if now else "")
        case "health":
            start = detail.get("from")
            moved = {"drop": "dropped", "rise": "rose"}.get(key, "changed")
            return f"health {moved}" + (f" from {start}" if start else "") + f" to {detail['to']}"
        case "event":
            return f"performed {detail.get('event', key)}"
    return f"{kind} {key}"


# -- from signals --------------------------------------------------------------------------------
def on_signals(
    session: Session,
    *,
    signals: Sequence[StoredSignal],
    lifecycle: Lifecycle,
    now: datetime,
    lease: timedelta = DEFAULT_LEASE,
    queue: bool = True,
) -> Outcome:
    """Enroll the records these stored signals qualify, in every live workflow listening
    (`queue`: see `enroll`)."""
    outcome = Outcome()
    if not signals:
        return outcome
    live = _live_listening(session, signals)
    if not live:
        return outcome
    by_workflow: dict[int, list[Candidate]] = defaultdict(list)
    for signal in signals:
        for workflow, version_id, document in live:
            if not _listens(workflow, signal):
                continue
            if workflow.live_since is None or signal.occurred_at < workflow.live_since:
                continue  # it happened before the workflow went live
            compiled = compile_version(version_id, document, lifecycle)
            if not compiled.trigger_matches(signal.detail, now):
                continue
            by_workflow[workflow.id].append(
                Candidate(
                    signal.object_type,
                    signal.object_id,
                    {"kind": signal.kind, "key": signal.key, "detail": dict(signal.detail)},
                    describe(signal.kind, signal.key, signal.detail),
                    signal.id,
                )
            )
    workflows = {w.id: (w, v, d) for w, v, d in live}
    for workflow_id, candidates in by_workflow.items():
        workflow, version_id, document = workflows[workflow_id]
        compiled = compile_version(version_id, document, lifecycle)
        outcome.merge(
            enroll(
                session,
                workflow=workflow,
                compiled=compiled,
                candidates=candidates,
                via="signal",
                now=now,
                lease=lease,
                queue=queue,
            )
        )
    return outcome


def _listens(workflow: Workflow, signal: StoredSignal) -> bool:
    return (
        workflow.object_type == signal.object_type
        and workflow.trigger_kind == signal.kind
        and workflow.trigger_key in (signal.key, ANY_KEY)
    )


def _live_listening(
    session: Session, signals: Sequence[StoredSignal]
) -> list[tuple[Workflow, int, dict[str, Any]]]:
    """Live workflows whose trigger index entry matches one of the signals (one query), with
    their current version's id and document; `_listens` pairs them exactly."""
    return workflow_rows.live_for(
        session,
        object_types={s.object_type for s in signals},
        kinds={s.kind for s in signals},
        keys={s.key for s in signals} | {ANY_KEY},
    )


# -- enrolling -----------------------------------------------------------------------------------
def enroll(
    session: Session,
    *,
    workflow: Workflow,
    compiled: CompiledWorkflow,
    candidates: Sequence[Candidate],
    via: str,
    now: datetime,
    lease: timedelta = DEFAULT_LEASE,
    check_only_if: bool = True,
    queue: bool = True,
) -> Outcome:
    """Enroll the candidates the workflow admits: `only_if` holds (unless not checked, for a
    manual enrollment), `exit_if` does not, `reenroll_after` has passed; the unique indexes
    drop the rest. `refused` says why a candidate was not enrolled when it is worth saying.
    With `queue`, a first step due now is queued for the caller to enqueue after its commit
    (a worker); without, it is scheduled for the scheduler to dispatch (the CLI)."""
    outcome = Outcome()
    definition = compiled.definition
    if not candidates:
        return outcome
    object_type = workflow.object_type
    ids = {c.object_id for c in candidates}
    wanted = [c for c in (compiled.only_if, compiled.exit_if) if c is not None]
    record_views: dict[int, RecordValues] = {}
    if wanted:
        record_views = views.rule_views(
            session,
            object_type=object_type,
            ids=ids,
            aggregates=compiled.aggregates,
            with_account=compiled.uses_account,
            now=now,
        )
    last: dict[tuple[int, str, int], datetime] = {}
    spacing = definition.reenroll_after_seconds
    if spacing:
        last = q.last_enrolled(
            session, pairs={(workflow.id, object_type, c.object_id) for c in candidates}
        )
    forgotten = _forgotten(session, object_type, ids)
    rows: list[dict[str, Any]] = []
    reasons: dict[tuple[int | None, int], Candidate] = {}
    for candidate in candidates:
        record = (object_type, candidate.object_id)
        if candidate.object_id in forgotten:
            outcome.refused[record] = "the contact was forgotten (records forget)"
            continue
        view = record_views.get(candidate.object_id)
        if wanted and view is None:
            outcome.refused[record] = "the record no longer exists"
            continue
        if check_only_if and compiled.only_if is not None and not compiled.only_if.holds(view, now):
            outcome.refused[record] = f"only_if `{compiled.only_if.text}` is false"
            continue
        if compiled.exit_if is not None and compiled.exit_if.holds(view, now):
            outcome.refused[record] = f"exit_if `{compiled.exit_if.text}` is already true"
            continue
        before = last.get((workflow.id, object_type, candidate.object_id))
        if before is not None and now - before < timedelta(seconds=spacing):
            outcome.refused[record] = (
                f"enrolled {before:%Y-%m-%d %H:%M} UTC; reenroll_after is "
                f"{definition.reenroll_after}"
            )
            continue
        rows.append(
            {
                "workflow_id": workflow.id,
                "version_id": compiled.version_id,
                "object_type": object_type,
                "object_id": candidate.object_id,
                "status": "active",
                "once": definition.enrollment == "once",
                "via": via,
                "signal_id": candidate.signal_id,
                "trigger": dict(candidate.trigger),
                "enrolled_at": now,
            }
        )
        reasons[(candidate.signal_id, candidate.object_id)] = candidate
    inserted = q.insert_new(session, rows=rows)
    made = {(r.signal_id, r.object_id) for r in inserted}
    if definition.enrollment == "every_time":
        _log_extra(session, workflow, [c for k, c in reasons.items() if k not in made], now)
    for key, candidate in reasons.items():
        if key not in made:
            outcome.refused.setdefault(
                (object_type, candidate.object_id),
                "already enrolled"
                + (" (enrollment: once)" if definition.enrollment == "once" else ""),
            )
    logs: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    first = definition.steps[0]
    for row in sorted(inserted, key=lambda r: r.id):
        candidate = reasons[(row.signal_id, row.object_id)]
        outcome.enrolled.append(row.id)
        logs.append(
            {
                "enrollment_id": row.id,
                "at": now,
                "kind": "enrolled",
                "message": f"enrolled ({via}): {candidate.reason} · version {workflow.version}",
                "detail": {"signal_id": candidate.signal_id, "via": via},
            }
        )
        due_at = now + timedelta(seconds=first.delay_seconds)
        steps.append(step_row(row.id, 0, due_at, now, lease, queue=queue))
        logs.append(scheduled_line(row.id, 0, first.action, steps[-1]["due_at"], now))
    for (step_id, status), _ in zip(step_rows.add(session, rows=steps), steps, strict=True):
        if status == "queued":
            outcome.due_steps.append(step_id)
    q.log(session, rows=logs)
    return outcome


def _forgotten(session: Session, object_type: str, ids: Collection[int]) -> set[int]:
    """Contacts among `ids` that `records forget` erased: they never enroll again."""
    if object_type != "contact" or not ids:
        return set()
    return set(
        session.scalars(
            select(Contact.id).where(Contact.id.in_(sorted(ids)), Contact.forgotten_at.is_not(None))
        )
    )


def step_row(
    enrollment_id: int,
    index: int,
    due_at: datetime,
    now: datetime,
    lease: timedelta,
    *,
    queue: bool = True,
) -> dict[str, Any]:
    """A new step run: queued with a lease when already due and `queue` (its message goes out
    after the commit), else scheduled for the scheduler to dispatch."""
    due = queue and due_at <= now
    return {
        "enrollment_id": enrollment_id,
        "step_index": index,
        "status": "queued" if due else "scheduled",
        "due_at": due_at,
        "attempt": 0,
        "lease_until": now + lease if due else None,
        "idempotency_key": new_key(),
        "created_at": now,
    }


def scheduled_line(
    enrollment_id: int, index: int, action: str, due_at: datetime, now: datetime
) -> dict[str, Any]:
    when = "now" if due_at <= now else f"for {due_at:%Y-%m-%d %H:%M} UTC"
    return {
        "enrollment_id": enrollment_id,
        "at": now,
        "kind": "scheduled",
        "step_index": index,
        "message": f"step {index + 1} ({action}) scheduled {when}",
        "detail": {"due_at": due_at.isoformat()},
    }


def _log_extra(
    session: Session, workflow: Workflow, extra: Sequence[Candidate], now: datetime
) -> None:
    """every_time: a signal for a record already active is written on the active one."""
    if not extra:
        return
    active = {
        (r.object_type, r.object_id): r.id
        for r in q.active_for(session, records={(workflow.object_type, c.object_id) for c in extra})
        if r.workflow_id == workflow.id
    }
    q.log(
        session,
        rows=[
            {
                "enrollment_id": active[(workflow.object_type, c.object_id)],
                "at": now,
                "kind": "signal_skipped",
                "message": f"not enrolled again: {c.reason} while this enrollment is active",
                "detail": {"signal_id": c.signal_id},
            }
            for c in extra
            if (workflow.object_type, c.object_id) in active
        ],
    )


# -- exits ---------------------------------------------------------------------------------------
def check_exits(
    session: Session,
    *,
    records: Collection[tuple[str, int]],
    lifecycle: Lifecycle,
    now: datetime,
) -> list[int]:
    """End the active enrollments of these records whose workflow's `exit_if` now holds, and
    try again the steps of the others held for a value the record lacked (an email that
    would have said "Hi ,"); returns the enrollment ids exited."""
    active = q.active_for(session, records=records)
    if not active:
        return []
    exited = _exits(session, active, lifecycle, now)
    retry_attention(
        session,
        enrollment_ids=[r.id for r in active if r.id not in exited],
        now=now,
        why="the record changed; trying again",
        needs="data",
    )
    return exited


def retry_attention(
    session: Session,
    *,
    enrollment_ids: Collection[int],
    now: datetime,
    why: str,
    needs: str | None = None,
) -> int:
    """Schedule again (due now) these enrollments' steps that need attention (only those
    held for `needs`, if given), each logged with `why`; returns how many."""
    released = step_rows.release_attention(
        session, needs=needs, enrollment_ids=enrollment_ids, now=now
    )
    q.log(
        session,
        rows=[
            {
                "enrollment_id": row.enrollment_id,
                "at": now,
                "kind": "retried",
                "step_index": row.step_index,
                "message": f"step {row.step_index + 1}: {why}",
            }
            for row in released
        ],
    )
    return len(released)


def _exits(
    session: Session, active: Sequence[Any], lifecycle: Lifecycle, now: datetime
) -> list[int]:
    documents = q.version_documents(session, version_ids={r.version_id for r in active})
    compiled = {vid: compile_version(vid, doc, lifecycle) for vid, doc in documents.items()}
    exiting = [r for r in active if compiled[r.version_id].exit_if is not None]
    if not exiting:
        return []
    exited: list[tuple[int, str]] = []
    for object_type in ("contact", "account"):
        mine = [r for r in exiting if r.object_type == object_type]
        if not mine:
            continue
        aggregates = tuple(
            dict.fromkeys(a for r in mine for a in compiled[r.version_id].aggregates)
        )
        record_views = views.rule_views(
            session,
            object_type=object_type,
            ids={r.object_id for r in mine},
            aggregates=aggregates,
            with_account=any(compiled[r.version_id].uses_account for r in mine),
            now=now,
        )
        for r in mine:
            view = record_views.get(r.object_id)
            condition = compiled[r.version_id].exit_if
            assert condition is not None
            if view is not None and condition.holds(view, now):
                exited.append((r.id, f"exit_if `{condition.text}` became true"))
    return exit_enrollments(session, exits=exited, now=now)


def exit_enrollments(
    session: Session, *, exits: Iterable[tuple[int, str]], now: datetime, status: str = "exited"
) -> list[int]:
    """End these enrollments (id, reason) if still active, cancel their pending steps, and
    log why. Returns the ids ended by this call."""
    reasons = dict(exits)
    by_reason: dict[str, list[int]] = defaultdict(list)
    for enrollment_id, reason in reasons.items():
        by_reason[reason].append(enrollment_id)
    ended: list[int] = []
    for reason, ids in by_reason.items():
        ended += q.end(session, ids=ids, status=status, reason=reason, now=now)
    q.log(
        session,
        rows=[
            {
                "enrollment_id": eid,
                "at": now,
                "kind": status,
                "message": f"{status}: {reasons[eid]}",
            }
            for eid in ended
        ],
    )
    return ended
