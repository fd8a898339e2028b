"""Segments: saved rules over accounts or contacts, with membership stored and kept current.

A new segment's first computation stores its members without signals. Recomputing in SQL
(a rule change, or the periodic refresh of a segment that time alone can move) turns the
difference into segment_enter / segment_leave signals, in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, Row, Table, func, select
from sqlalchemy.orm import Session

from engine import lifecycle as workspace_lifecycle
from engine.rules import Predicate, Rule, parse, to_python
from engine.rules.analysis import Dependencies, account_fields, dependencies
from engine.rules.lifecycle import Lifecycle, resolve
from engine.rules.to_sql import to_sql
from storage.models import Segment
from storage.queries import locks, signals
from storage.queries import segments as q
from storage.queries import workflows as workflow_rows
from storage.queries.ingest import ACCOUNTS, CONTACTS
from storage.queries.signals import StoredSignal

OBJECT_TYPES = ("account", "contact")
BIG_MOVE = 10_000  # members moved by one refresh past which the statistics are refreshed


class SegmentError(ValueError):
    """A segment definition is wrong; the message names the problem."""


@dataclass(frozen=True)
class Compiled:
    """A segment ready to evaluate: its rule, Python predicate and what the rule reads."""

    id: int
    name: str
    object_type: str
    rule: Rule
    predicate: Predicate
    deps: Dependencies


def table_for(object_type: str) -> Table:
    return ACCOUNTS if object_type == "account" else CONTACTS


def check_rule(object_type: str, text: str, lifecycle: Lifecycle | None = None) -> Rule:
    """Parse a segment rule for its object; RuleError, SegmentError or LifecycleError say
    what is wrong (with `lifecycle`, an unknown stage or health bucket too)."""
    if object_type not in OBJECT_TYPES:
        raise SegmentError(f'object must be "account" or "contact", not {object_type!r}')
    rule = parse(text)
    if object_type == "account" and (fields := account_fields(rule)):
        raise SegmentError(f"{fields[0]}: account. fields belong in contact rules")
    if lifecycle is not None:
        resolve(rule, lifecycle, strict=True)
    return rule


@lru_cache(maxsize=4096)
def _compile(text: str, lifecycle: Lifecycle) -> tuple[Rule, Predicate, Dependencies]:
    rule = resolve(parse(text), lifecycle)
    return rule, to_python(rule), dependencies(rule)


def compiled(segment: Segment | Row[Any], lifecycle: Lifecycle) -> Compiled:
    """The segment's rule resolved against the workspace's stages and health thresholds."""
    rule, predicate, deps = _compile(segment.rule, lifecycle)
    return Compiled(segment.id, segment.name, segment.object_type, rule, predicate, deps)


def load(session: Session, lifecycle: Lifecycle | None = None) -> list[Compiled]:
    """Every segment, compiled (compilation is cached by rule text and lifecycle)."""
    lifecycle = lifecycle or workspace_lifecycle.current(session)
    return [compiled(s, lifecycle) for s in q.definitions(session)]


def load_with_lifecycle(session: Session) -> tuple[Lifecycle, list[Compiled]]:
    """The workspace's Lifecycle and every segment compiled against it, in one query."""
    rows, found = q.definitions_and_configuration(session, keys=workspace_lifecycle.KEYS)
    lifecycle = workspace_lifecycle.from_configuration(found)
    return lifecycle, [compiled(s, lifecycle) for s in rows]


def uses_lifecycle(segment: Segment) -> bool:
    """Whether the rule reads `stage` or `health`, whose meaning the workspace defines."""
    return any(path[-1] in ("stage", "health") for path in dependencies(parse(segment.rule)).fields)


def condition(segment: Segment, *, session: Session, now: datetime) -> ColumnElement[bool]:
    """The segment's rule as SQL over its table, at `now`."""
    rule, _, _ = _compile(segment.rule, workspace_lifecycle.current(session))
    dialect = session.get_bind().dialect.name
    return to_sql(rule, table=table_for(segment.object_type), now=now, dialect=dialect)


def create(
    session: Session, *, name: str, object_type: str, rule: str, now: datetime
) -> tuple[Segment, int]:
    """Store a new segment and its first membership, without signals; returns it and its size."""
    check_rule(object_type, rule)
    segment = Segment(
        name=name.strip(),
        name_key=q.name_key(name),
        object_type=object_type,
        rule=rule,
        created_at=now,
        updated_at=now,
        refreshed_at=now,
    )
    session.add(segment)
    session.flush()
    locks.segment(session, segment.id)
    table = table_for(object_type)
    size = q.fill(
        session,
        segment_id=segment.id,
        table=table,
        condition=condition(segment, session=session, now=now),
        now=now,
    )
    q.analyze(session)  # fresh statistics, or the next refresh may plan a nested loop
    return segment, size


def count_matching(session: Session, *, object_type: str, rule: str, now: datetime) -> int:
    """How many records of `object_type` a rule not stored as a segment matches now (a new
    segment's size before it exists)."""
    probe = Segment(object_type=object_type, rule=rule)
    table = table_for(object_type)
    matched = condition(probe, session=session, now=now)
    return int(session.scalar(select(func.count()).select_from(table).where(matched)) or 0)


def preview(session: Session, *, segment: Segment, rule: str, now: datetime) -> tuple[int, int]:
    """How many records would enter and leave if the segment's rule became `rule` now."""
    check_rule(segment.object_type, rule)
    probe = Segment(id=segment.id, object_type=segment.object_type, rule=rule)
    return q.diff_counts(
        session,
        segment_id=segment.id,
        table=table_for(segment.object_type),
        condition=condition(probe, session=session, now=now),
    )


@dataclass(frozen=True)
class Refreshed:
    segment: str
    entered: int
    left: int
    signals: list[StoredSignal] = field(default_factory=list)  # to enroll from


def change_rule(session: Session, *, segment: Segment, rule: str, now: datetime) -> Refreshed:
    """Give the segment a new rule and recompute it; enter / leave are signals."""
    check_rule(segment.object_type, rule)
    locks.segment(session, segment.id)
    segment.rule = rule
    segment.updated_at = now
    session.flush()
    refreshed = refresh(session, segment=segment, now=now)
    assert refreshed is not None
    return refreshed


def refresh(
    session: Session, *, segment: Segment, now: datetime, wait: bool = True, signal: bool = True
) -> Refreshed | None:
    """Recompute membership set-wise and store a signal for each record that entered or left
    (with `signal=False`, none: a new meaning of stages or health moves membership silently).

    Holds the segment's lock, so record evaluations of this segment wait (or, with
    `wait=False`, returns None at once when one is running).
    """
    if wait:
        locks.segment(session, segment.id)
    elif not locks.try_segment(session, segment.id):
        return None
    entered, left = q.refresh(
        session,
        segment_id=segment.id,
        table=table_for(segment.object_type),
        condition=condition(segment, session=session, now=now),
        now=now,
    )
    rows = [
        membership_signal(segment.object_type, record_id, segment, "enter", now)
        for record_id in entered
    ] + [
        membership_signal(segment.object_type, record_id, segment, "leave", now)
        for record_id in left
    ]
    stored = signals.store(session, rows=rows if signal else [], now=now)
    segment.refreshed_at = now
    if len(entered) + len(left) > BIG_MOVE:
        q.analyze(session)
    return Refreshed(
        segment.name,
        len(entered),
        len(left),
        [StoredSignal(**row._mapping) for row in stored],
    )


def membership_signal(
    object_type: str, record_id: int, segment: Segment | Compiled, move: str, at: datetime
) -> dict[str, Any]:
    """A segment_enter / segment_leave signal row."""
    return {
        "object_type": object_type,
        "object_id": record_id,
        "kind": f"segment_{move}",
        "key": str(segment.id),
        "detail": {"segment": segment.name},
        "occurred_at": at,
    }


def delete(session: Session, *, name: str) -> Segment:
    """Delete a segment and its membership; SegmentError when there is none of that name or
    a workflow is triggered by it."""
    segment = q.by_name(session, name=name)
    if segment is None:
        raise SegmentError(f"no segment named {name!r}")
    users = workflow_rows.using_segment(session, segment_id=segment.id)
    if users:
        raise SegmentError(
            f"{segment.name!r} triggers {', '.join(repr(n) for n in users)}: change or delete "
            "those workflows first"
        )
    locks.segment(session, segment.id)
    session.delete(segment)
    session.flush()
    return segment
