"""From outbox rows to signals, exactly once.

Each call claims its outbox rows (a guarded UPDATE), computes what they mean — stage
entered / left, health bucket moved, segments entered / left, events performed — and stores
those signals in the same transaction, so a row processed twice stores nothing new.
Rows written with `--no-signals` move state (membership, score history) but signal nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from engine import enrollment, lifecycle, metrics, segments, views
from engine.rules.records import RecordValues
from engine.rules.to_sql import aggregates_for
from storage.queries import locks, outbox, records
from storage.queries import segments as membership
from storage.queries import signals as store


@dataclass(frozen=True)
class Evaluated:
    processed: int
    signals: int
    enrolled: int = 0
    exited: int = 0
    # Steps due now, queued by this transaction: enqueue them once it has committed.
    due_steps: tuple[int, ...] = ()


@dataclass
class _Work:
    """Which segments to re-run for which records, and whether their moves are signals."""

    todo: dict[tuple[str, int], set[int]] = field(default_factory=dict)
    loud: set[tuple[str, int]] = field(default_factory=set)

    def add(
        self, object_type: str, record_id: int | None, segment_ids: Iterable[int], emit: bool
    ) -> None:
        if record_id is None:
            return
        key = (object_type, record_id)
        self.todo.setdefault(key, set()).update(segment_ids)
        if emit:
            self.loud.add(key)

    def records(self, object_type: str) -> dict[int, set[int]]:
        return {rid: segs for (t, rid), segs in self.todo.items() if t == object_type and segs}


def evaluate(
    session: Session,
    *,
    outbox_ids: Sequence[int],
    now: datetime,
    lease: timedelta = enrollment.DEFAULT_LEASE,
) -> Evaluated:
    """Process these outbox rows (those not processed yet), store their signals, enroll
    the records they qualify and exit the enrolled records whose `exit_if` now holds."""
    # A rule change or a refresh waits for this evaluation: every segment's lock is held
    # shared (on PostgreSQL, taken by the claim's own statement), then the rules are read.
    postgres = session.get_bind().dialect.name == "postgresql"
    holding = locks.all_segments_shared_clause() if postgres else None
    rows = outbox.claim(session, ids=outbox_ids, now=now, holding=holding)
    if not rows:
        return Evaluated(0, 0)
    workspace, loaded = segments.load_with_lifecycle(session)
    health = lifecycle.Health(good=workspace.good, bad=workspace.bad)
    compiled = {s.id: s for s in loaded}
    by_type = {
        t: [s for s in compiled.values() if s.object_type == t] for t in segments.OBJECT_TYPES
    }
    out: list[dict[str, Any]] = []
    scores: list[dict[str, Any]] = []
    work = _Work()
    changed_accounts: dict[int, bool] = {}
    event_rows: dict[int, bool] = {}
    for row in rows:
        for event_id in row.event_ids or ():
            event_rows[event_id] = event_rows.get(event_id, False) or row.signals
        if row.object_type is None or row.object_id is None:
            continue
        out += _record_signals(row, health) if row.signals else []
        if "health_score" in (row.changes or {}):
            score = row.changes["health_score"][1]
            scores.append(
                {
                    "object_type": row.object_type,
                    "object_id": row.object_id,
                    "score": score,
                    "at": row.created_at,
                }
            )
        work.add(
            row.object_type, row.object_id, (s.id for s in by_type[row.object_type]), row.signals
        )
        if row.object_type == "account":
            changed_accounts[row.object_id] = (
                changed_accounts.get(row.object_id, False) or row.signals
            )
    with_account = [s.id for s in by_type["contact"] if s.deps.uses_account]
    if with_account:
        for contact_id, account_id in records.contacts_of(session, account_ids=changed_accounts):
            work.add("contact", contact_id, with_account, changed_accounts[account_id])
    for event in records.events_by_ids(session, ids=event_rows):
        emit = event_rows[event.id]
        if emit:
            out += _event_signals(event)
        for object_type, record_id in (
            ("contact", event.contact_id),
            ("account", event.account_id),
        ):
            moved = [
                s.id
                for s in by_type[object_type]
                if event.name in s.deps.events or s.deps.uses_last_seen
            ]
            work.add(object_type, record_id, moved, emit)
    enter, leave, moves = _segment_moves(session, work, compiled, now)
    stored = store.move_and_store(session, enter=enter, leave=leave, signals=out + moves, now=now)
    store.record_scores(session, rows=scores)
    metrics.signals(stored)
    # Exits first: a record whose exit holds now is not enrolled by the same change.
    exited = enrollment.check_exits(session, records=work.todo, lifecycle=workspace, now=now)
    enrolled = enrollment.on_signals(
        session,
        signals=[store.StoredSignal(**row._mapping) for row in stored],
        lifecycle=workspace,
        now=now,
        lease=lease,
    )
    metrics.ENROLLMENTS.labels(source="signal").inc(len(enrolled.enrolled))
    return Evaluated(
        len(rows),
        len(stored),
        len(enrolled.enrolled),
        len(exited),
        tuple(enrolled.due_steps),
    )


def _record_signals(row: Row[Any], health: lifecycle.Health) -> list[dict[str, Any]]:
    """Stage entered / left and health bucket moved, from the change's [before, after]."""
    assert row.object_type is not None and row.object_id is not None
    changes = row.changes or {}
    found = []

    def signal(kind: str, key: str, **detail: Any) -> None:
        found.append(
            {
                "object_type": row.object_type,
                "object_id": row.object_id,
                "kind": kind,
                "key": key,
                "detail": detail,
                "occurred_at": row.created_at,
            }
        )

    if "stage" in changes:
        before, after = changes["stage"]
        if before is not None:
            signal("stage_leave", before, **{"from": before, "to": after})
        if after is not None:
            signal("stage_enter", after, **{"from": before, "to": after})
    if "health_score" in changes:
        before, after = changes["health_score"]
        move = health.move(before, after)
        if move is not None:
            direction, old, new = move
            signal(
                "health", direction, score=after, previous_score=before, **{"from": old, "to": new}
            )
    return found


def _event_signals(event: Any) -> list[dict[str, Any]]:
    """`event` performed: one for the contact, one for its account (the event's details)."""
    detail = {
        "event_id": event.id,
        "event": event.name,
        "contact_id": event.contact_id,
        "timestamp": event.timestamp.isoformat(),
        "properties": event.properties or {},
    }
    owners = [("contact", event.contact_id), ("account", event.account_id)]
    return [
        {
            "object_type": object_type,
            "object_id": record_id,
            "kind": "event",
            "key": event.name,
            "detail": detail,
            "occurred_at": event.timestamp,
        }
        for object_type, record_id in owners
        if record_id is not None
    ]


def _segment_moves(
    session: Session, work: _Work, compiled: dict[int, segments.Compiled], now: datetime
) -> tuple[list[tuple[int, int]], list[tuple[int, int]], list[dict[str, Any]]]:
    """Re-run each record's segments in Python: the (segment, record) pairs to enter and to
    leave, and their signals (each stored only if its move is made)."""
    enter: list[tuple[int, int]] = []
    leave: list[tuple[int, int]] = []
    found: list[dict[str, Any]] = []
    # Contacts first, then accounts, each in id order: the lock order of every writer.
    for object_type in ("contact", "account"):
        todo = work.records(object_type)
        if not todo:
            continue
        views = _views(session, object_type, todo, compiled, now)
        segment_ids = set().union(*todo.values())
        stored = membership.memberships(session, segment_ids=segment_ids, record_ids=todo)
        for record_id, wanted in todo.items():
            view = views.get(record_id)
            if view is None:
                continue
            loud = (object_type, record_id) in work.loud
            for segment_id in sorted(wanted):
                inside = compiled[segment_id].predicate(view, now)
                if inside == ((segment_id, record_id) in stored):
                    continue
                move = "enter" if inside else "leave"
                (enter if inside else leave).append((segment_id, record_id))
                if loud:
                    signal = segments.membership_signal(
                        object_type, record_id, compiled[segment_id], move, now
                    )
                    found.append({**signal, "segment_id": segment_id})
    return enter, leave, found


def _views(
    session: Session,
    object_type: str,
    todo: dict[int, set[int]],
    compiled: dict[int, segments.Compiled],
    now: datetime,
) -> dict[int, RecordValues]:
    """Each record as its rules read it: columns, traits, aggregates (one query), account."""
    table = segments.table_for(object_type)
    # Locked: two evaluations of one record run one after the other, each reading the
    # latest committed state, so the last to commit is never the stale one.
    rows = records.by_ids(session, table=table, ids=todo, lock=True)
    needing = [rid for rid, segs in todo.items() if any(compiled[s].deps.aggregates for s in segs)]
    wanted = [a for segs in todo.values() for s in segs for a in compiled[s].deps.aggregates]
    counted = aggregates_for(
        session.connection(), table=table, record_ids=needing, aggregates=wanted, now=now
    )
    account_ids: set[int] = set()
    if object_type == "contact":
        account_ids = {
            row.account_id
            for rid, row in rows.items()
            if row.account_id is not None and any(compiled[s].deps.uses_account for s in todo[rid])
        }
    return views.assemble(session, object_type, rows, counted, account_ids)
