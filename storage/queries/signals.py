"""Signals: stored once each, read back in order (the tail, and the workflow engine)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.orm import Session

from storage.models import HealthScore, Signal

SIGNALS: Table = Signal.__table__  # type: ignore[assignment]
HEALTH_SCORES: Table = HealthScore.__table__  # type: ignore[assignment]


def store(session: Session, *, rows: Sequence[dict[str, Any]], now: datetime) -> int:
    """Insert signals (object_type, object_id, kind, key, detail, occurred_at); never commits."""
    if rows:
        session.execute(insert(SIGNALS), [{**row, "created_at": now} for row in rows])
    return len(rows)


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
