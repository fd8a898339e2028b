"""Slack deliveries seen, by event id: the first delivery of an event has its effect, a retry
or a duplicate finds the row and has none, whichever process it reaches."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.action_models import SlackEvent

EVENTS: Table = SlackEvent.__table__  # type: ignore[assignment]
EVENT_ID_MAX = 64


def _insert(session: Session) -> Any:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(EVENTS)


def record(
    session: Session, *, event_id: str, now: datetime, timeout_ms: int | None = None
) -> bool:
    """Remember `event_id`: True when this is its first delivery, False when some process
    recorded it before. On PostgreSQL `timeout_ms` bounds the statement (it runs before
    Slack gets its answer)."""
    if timeout_ms is not None and session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"SET LOCAL statement_timeout = {int(timeout_ms)}"))
    inserted = session.execute(
        _insert(session)
        .values(event_id=event_id[:EVENT_ID_MAX], received_at=now)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(EVENTS.c.event_id)  # rowcount is not reliable here; RETURNING is
    ).first()
    return inserted is not None


def purge(session: Session, *, before: datetime) -> int:
    """Forget events received before `before` (Slack retries within minutes); how many."""
    result = session.execute(delete(EVENTS).where(EVENTS.c.received_at < before))
    return int(result.rowcount)  # type: ignore[attr-defined]
