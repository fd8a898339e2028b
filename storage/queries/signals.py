"""Signals: stored once each, read back in order (the tail, and the workflow engine)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Table, delete, insert, select, text
from sqlalchemy.orm import Session

from storage.models import HealthScore, Signal
from storage.queries import segments as membership


@dataclass(frozen=True)
class StoredSignal:
    """A signal as stored: what the workflow engine enrolls from."""

    id: int
    object_type: str
    object_id: int
    kind: str
    key: str
    detail: Mapping[str, Any]
    occurred_at: datetime


SIGNALS: Table = Signal.__table__  # type: ignore[assignment]
HEALTH_SCORES: Table = HealthScore.__table__  # type: ignore[assignment]


_STORED = (
    SIGNALS.c.id,
    SIGNALS.c.object_type,
    SIGNALS.c.object_id,
    SIGNALS.c.kind,
    SIGNALS.c.key,
    SIGNALS.c.detail,
    SIGNALS.c.occurred_at,
)


def store(session: Session, *, rows: Sequence[dict[str, Any]], now: datetime) -> list[Row[Any]]:
    """Insert signals (object_type, object_id, kind, key, detail, occurred_at) and return
    them stored (with `id`), in the order given; never commits."""
    if not rows:
        return []
    result = session.execute(
        insert(SIGNALS).returning(*_STORED, sort_by_parameter_order=True),
        [{**row, "created_at": now} for row in rows],
    )
    return list(result.all())


# One statement on PostgreSQL: the membership moves, then the signals — a segment signal only
# for a move this statement made (`segment_id` set), every other signal as it comes.
_MOVE_AND_STORE = text(
    """
    WITH entered AS (
        INSERT INTO segment_members (segment_id, record_id, since)
        SELECT e.s, e.r, :now
        FROM unnest(CAST(:enter_s AS bigint[]), CAST(:enter_r AS bigint[])) AS e(s, r)
        ON CONFLICT DO NOTHING
        RETURNING segment_id, record_id, 'segment_enter'::text AS kind
    ), gone AS (
        DELETE FROM segment_members AS m
        USING unnest(CAST(:leave_s AS bigint[]), CAST(:leave_r AS bigint[])) AS l(s, r)
        WHERE m.segment_id = l.s AND m.record_id = l.r
        RETURNING m.segment_id, m.record_id, 'segment_leave'::text AS kind
    ), moved AS (
        SELECT * FROM entered UNION ALL SELECT * FROM gone
    ), wanted AS (
        SELECT * FROM jsonb_to_recordset(CAST(:signals AS jsonb)) AS w(
            n int, object_type text, object_id bigint, kind text, key text, detail jsonb,
            occurred_at timestamptz, segment_id bigint)
    ), stored AS (
        INSERT INTO signals (object_type, object_id, kind, key, detail, occurred_at, created_at)
        SELECT w.object_type, w.object_id, w.kind, w.key, w.detail, w.occurred_at, :now
        FROM wanted AS w
        WHERE w.segment_id IS NULL OR EXISTS (
            SELECT 1 FROM moved AS m
            WHERE m.segment_id = w.segment_id AND m.record_id = w.object_id AND m.kind = w.kind)
        ORDER BY w.n
        RETURNING id, object_type, object_id, kind, key, detail, occurred_at
    )
    SELECT * FROM stored ORDER BY id
    """
)


def move_and_store(
    session: Session,
    *,
    enter: Sequence[tuple[int, int]],
    leave: Sequence[tuple[int, int]],
    signals: Sequence[dict[str, Any]],
    now: datetime,
) -> list[Row[Any]]:
    """Store memberships entered and left, and the signals: a signal carrying a `segment_id`
    is stored only when this call made its move (a move another transaction made first
    signals nothing twice). Returns the signals stored (id, object_type, object_id, kind,
    key, detail, occurred_at), by id; never commits."""
    if not (enter or leave or signals):
        return []
    if session.get_bind().dialect.name != "postgresql":
        moved = {("segment_enter", *pair) for pair in membership.add(session, pairs=enter, now=now)}
        moved |= {("segment_leave", *pair) for pair in membership.remove(session, pairs=leave)}
        kept = [
            {k: v for k, v in row.items() if k != "segment_id"}
            for row in signals
            if row.get("segment_id") is None
            or (row["kind"], row["segment_id"], row["object_id"]) in moved
        ]
        return store(session, rows=kept, now=now)
    enter, leave = sorted(set(enter)), sorted(set(leave))
    rows = [
        {**row, "n": n, "occurred_at": row["occurred_at"].isoformat()}
        for n, row in enumerate(signals)
    ]
    return list(
        session.execute(
            _MOVE_AND_STORE.columns(*_STORED),
            {
                "now": now,
                "enter_s": [s for s, _ in enter],
                "enter_r": [r for _, r in enter],
                "leave_s": [s for s, _ in leave],
                "leave_r": [r for _, r in leave],
                "signals": json.dumps(rows),
            },
        ).all()
    )


def after(session: Session, *, after_id: int, limit: int = 500) -> list[Signal]:
    """Signals with an id above `after_id`, oldest first."""
    return list(
        session.scalars(select(Signal).where(Signal.id > after_id).order_by(Signal.id).limit(limit))
    )


def by_ids(session: Session, *, ids: Sequence[int]) -> list[Signal]:
    """The signals of these ids that exist, by id."""
    if not ids:
        return []
    return list(session.scalars(select(Signal).where(Signal.id.in_(ids)).order_by(Signal.id)))


def start_after(session: Session, *, back: int) -> int:
    """The id to read after so that the newest `back` signals come first (0: all of them)."""
    found = session.scalar(select(Signal.id).order_by(Signal.id.desc()).offset(back).limit(1))
    return found or 0


def record_scores(session: Session, *, rows: Sequence[dict[str, Any]]) -> None:
    """Append to the health score history (object_type, object_id, score, at)."""
    if rows:
        session.execute(insert(HEALTH_SCORES), list(rows))


def purge(session: Session, *, before: datetime) -> int:
    """Delete signals stored before `before`; returns how many went.

    Ids grow with time, so the cut is the first id stored since `before` (a scan that stops
    at the first young row) and the delete runs on the primary key.
    """
    first_kept = session.scalar(
        select(Signal.id).where(Signal.created_at >= before).order_by(Signal.id).limit(1)
    )
    stmt = delete(SIGNALS).where(SIGNALS.c.created_at < before)
    if first_kept is not None:
        stmt = stmt.where(SIGNALS.c.id < first_kept)
    result = session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)
