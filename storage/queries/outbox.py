"""The change outbox: claim rows for evaluation, find rows a lost message left behind, purge."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, CursorResult, Row, Table, bindparam, delete, select, update
from sqlalchemy.orm import Session

from storage.models import IngestMessage, OutboxRow


def claim_stale(
    session: Session, *, enqueued_before: datetime, now: datetime, limit: int = 1000
) -> list[int]:
    """Take unprocessed rows whose message is overdue and stamp them re-enqueued now.

    SKIP LOCKED lets several schedulers run at once without enqueuing a row twice per round.
    """
    ids = list(
        session.scalars(
            select(OutboxRow.id)
            .where(OutboxRow.processed_at.is_(None), OutboxRow.enqueued_at < enqueued_before)
            .order_by(OutboxRow.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if ids:
        session.execute(update(OutboxRow).where(OutboxRow.id.in_(ids)).values(enqueued_at=now))
    return ids


def purge(session: Session, *, processed_before: datetime, messages_before: datetime) -> int:
    """Delete processed outbox rows and expired messageIds; returns how many rows went."""
    gone = 0
    for stmt in (
        delete(OutboxRow).where(OutboxRow.processed_at < processed_before),
        delete(IngestMessage).where(IngestMessage.received_at < messages_before),
    ):
        result: CursorResult[Any] = session.execute(stmt)  # type: ignore[assignment]
        gone += result.rowcount or 0
    return gone


@lru_cache(maxsize=8)
def _claim_statement(holding: ColumnElement[bool] | None) -> Any:
    table: Table = OutboxRow.__table__  # type: ignore[assignment]
    stmt = (
        update(table)
        .where(
            table.c.id.in_(bindparam("ids", expanding=True)),
            table.c.processed_at.is_(None),
        )
        .values(processed_at=bindparam("now", type_=table.c.processed_at.type))
        .returning(*table.c)
    )
    return stmt if holding is None else stmt.where(holding)


def claim(
    session: Session,
    *,
    ids: Sequence[int],
    now: datetime,
    holding: ColumnElement[bool] | None = None,
) -> list[Row[Any]]:
    """Mark rows processed once (guarded) and return those this call moved, in id order;
    `holding` (a condition that takes locks) is added so it runs in this statement."""
    if not ids:
        return []
    # Core, not the ORM, and a statement built once: this runs once per message.
    rows = session.connection().execute(
        _claim_statement(holding), {"ids": sorted(set(ids)), "now": now}
    )
    return sorted(rows, key=lambda row: row.id)
