"""Set-wise SQL for ingestion: upserts, locks and inserts for many records at once.

Every function takes an open connection inside the caller's transaction and never commits.
Rows are handled in a sorted order so concurrent writers take row locks in the same order.
The hot statements go through `ingest_pg` on PostgreSQL; this portable form serves SQLite.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Row, Table, bindparam, case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from storage.models import (
    Account,
    AnonymousCall,
    Contact,
    Event,
    IngestMessage,
    OutboxRow,
    User,
)
from storage.queries import ingest_pg

ACCOUNTS: Table = Account.__table__  # type: ignore[assignment]
CONTACTS: Table = Contact.__table__  # type: ignore[assignment]
EVENTS: Table = Event.__table__  # type: ignore[assignment]
MESSAGES: Table = IngestMessage.__table__  # type: ignore[assignment]
OUTBOX: Table = OutboxRow.__table__  # type: ignore[assignment]
USERS: Table = User.__table__  # type: ignore[assignment]
ANONYMOUS: Table = AnonymousCall.__table__  # type: ignore[assignment]


def _insert(conn: Connection, table: Table) -> Any:
    """An INSERT that knows ON CONFLICT, for the connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def claim_message_ids(conn: Connection, *, ids: Iterable[str], now: datetime) -> set[str]:
    """Record messageIds; return those not seen before (the rest are repeats to skip)."""
    unique = sorted(set(ids))
    if not unique:
        return set()
    if conn.dialect.name == "postgresql":
        return ingest_pg.claim_message_ids(conn, ids=unique, now=now)
    stmt = (
        _insert(conn, MESSAGES)
        .on_conflict_do_nothing(index_elements=["message_id"])
        .returning(MESSAGES.c.message_id)
    )
    rows = conn.execute(stmt, [{"message_id": m, "received_at": now} for m in unique])
    return {row.message_id for row in rows}


def _earliest(table: Table, column: str, excluded: Any) -> Any:
    current = table.c[column]
    new = excluded[column]
    return case(
        (new.is_(None), current), (current.is_(None), new), (new < current, new), else_=current
    )


def _latest(table: Table, column: str, excluded: Any) -> Any:
    current = table.c[column]
    new = excluded[column]
    return case(
        (new.is_(None), current), (current.is_(None), new), (new > current, new), else_=current
    )


def upsert_records(
    conn: Connection,
    *,
    table: Table,
    seen: Mapping[str, tuple[datetime, datetime | None]],
    now: datetime,
) -> dict[str, Row[Any]]:
    """Make sure a record exists for each external id, and move its first/last seen times.

    `seen` maps external id -> (earliest time in this write, latest event time or None).
    Returns external id -> row (id, external_id, account_id for contacts, created flag).
    """
    if not seen:
        return {}
    if conn.dialect.name == "postgresql":
        return ingest_pg.upsert_records(conn, table=table.name, seen=seen, now=now)
    stmt: Insert = _insert(conn, table)
    excluded = stmt.excluded  # type: ignore[attr-defined]
    created_follows_seen = table.c.created_at == table.c.first_seen_at
    stmt = stmt.on_conflict_do_update(  # type: ignore[attr-defined]
        index_elements=["external_id"],
        set_={
            "first_seen_at": _earliest(table, "first_seen_at", excluded),
            "created_at": case(
                (
                    created_follows_seen & (excluded.first_seen_at < table.c.first_seen_at),
                    excluded.first_seen_at,
                ),
                else_=table.c.created_at,
            ),
            "last_seen_at": _latest(table, "last_seen_at", excluded),
        },
    )
    returning = [table.c.id, table.c.external_id, (table.c.updated_at == now).label("created")]
    if "account_id" in table.c:
        returning.append(table.c.account_id)
    rows = conn.execute(
        stmt.returning(*returning),
        [
            {
                "external_id": external_id,
                "traits": {},
                "trait_times": {},
                "created_at": first,
                "first_seen_at": first,
                "last_seen_at": last,
                "updated_at": now,
            }
            for external_id, (first, last) in sorted(seen.items())
        ],
    )
    return {row.external_id: row for row in rows}


def account_external_ids(conn: Connection, *, ids: Iterable[int | None]) -> list[str]:
    """External ids of accounts by id (no lock: the caller's upsert takes it, in order)."""
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return []
    return list(conn.scalars(select(ACCOUNTS.c.external_id).where(ACCOUNTS.c.id.in_(wanted))))


def lock_records(conn: Connection, *, table: Table, ids: Iterable[int]) -> list[Row[Any]]:
    """Read full rows for update (row locks on PostgreSQL; SQLite has one writer anyway)."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    stmt = select(table).where(table.c.id.in_(wanted)).order_by(table.c.id).with_for_update()
    return list(conn.execute(stmt))


def update_records(conn: Connection, *, table: Table, rows: list[dict[str, Any]]) -> None:
    """Write merged rows back; each dict has `id` plus the columns to set."""
    if not rows:
        return
    columns = [key for key in rows[0] if key != "id"]
    stmt = (
        update(table)
        .where(table.c.id == bindparam("_id"))
        .values({column: bindparam(column) for column in columns})
    )
    conn.execute(
        stmt, [{**{k: v for k, v in row.items() if k != "id"}, "_id": row["id"]} for row in rows]
    )


def bump_last_seen(conn: Connection, *, table: Table, seen: Mapping[int, datetime]) -> None:
    """Move last_seen_at forward (never back) for records by id."""
    if not seen:
        return
    if conn.dialect.name == "postgresql" and table is ACCOUNTS:
        ingest_pg.bump_last_seen(conn, seen=seen)
        return
    current = table.c.last_seen_at
    new = bindparam("seen", type_=table.c.last_seen_at.type)
    stmt = (
        update(table)
        .where(table.c.id == bindparam("_id"))
        .where(current.is_(None) | (current < new))
        .values(last_seen_at=new)
    )
    conn.execute(stmt, [{"_id": i, "seen": t} for i, t in sorted(seen.items())])


def ensure_users(
    conn: Connection, *, slack_ids: Iterable[str], emails: Iterable[str], now: datetime
) -> dict[str, int]:
    """Find or create users by Slack id or email; returns each given key -> user id."""
    slack_ids, emails = sorted(set(slack_ids)), sorted(set(emails))
    if not slack_ids and not emails:
        return {}
    for column, values in (("slack_id", slack_ids), ("email", emails)):
        if values:
            stmt = _insert(conn, USERS).on_conflict_do_nothing(index_elements=[column])
            conn.execute(stmt, [{column: value, "created_at": now} for value in values])
    found = conn.execute(
        select(USERS.c.id, USERS.c.slack_id, USERS.c.email).where(
            USERS.c.slack_id.in_(slack_ids) | USERS.c.email.in_(emails)
        )
    )
    out: dict[str, int] = {}
    for row in found:
        if row.slack_id in slack_ids:
            out[row.slack_id] = row.id
        if row.email in emails:
            out[row.email] = row.id
    return out


def store_event_group(
    conn: Connection, *, rows: list[dict[str, Any]], signals: bool, now: datetime
) -> tuple[int, list[int]] | None:
    """Store a group made only of events in one statement, where the database can (PostgreSQL).

    Each row: message_id, name, user, group (or None), timestamp, properties. Returns (new
    events, outbox ids), or None when the caller must take the general path.
    """
    if conn.dialect.name != "postgresql":
        return None
    return ingest_pg.store_event_group(conn, rows=rows, signals=signals, now=now)


def insert_events(conn: Connection, *, rows: list[dict[str, Any]], now: datetime) -> dict[str, int]:
    """Store events received now; a messageId stored before is skipped.

    Each row has message_id, name, contact_id, account_id, timestamp, properties.
    Returns messageId -> new event id.
    """
    if not rows:
        return {}
    if conn.dialect.name == "postgresql":
        return ingest_pg.insert_events(conn, rows=rows, now=now)
    stmt = (
        _insert(conn, EVENTS)
        .on_conflict_do_nothing(index_elements=["message_id"])
        .returning(EVENTS.c.id, EVENTS.c.message_id)
    )
    params = [{**row, "received_at": now} for row in rows]
    return {row.message_id: row.id for row in conn.execute(stmt, params)}


def insert_outbox(
    conn: Connection, *, rows: list[dict[str, Any]], signals: bool, now: datetime
) -> list[int]:
    """Record changes for the worker to evaluate; returns the new outbox ids.

    Each row has object_type, object_id, event_ids and changes (any may be None).
    """
    if not rows:
        return []
    if conn.dialect.name == "postgresql":
        return ingest_pg.insert_outbox(conn, rows=rows, signals=signals, now=now)
    stmt = _insert(conn, OUTBOX).returning(OUTBOX.c.id)
    params = [{**row, "signals": signals, "created_at": now, "enqueued_at": now} for row in rows]
    return [row.id for row in conn.execute(stmt, params)]


def count_anonymous(conn: Connection, *, counts: Mapping[tuple[date, str], int]) -> None:
    """Add to the per-day counts of calls that carried only an anonymousId."""
    if not counts:
        return
    stmt: Insert = _insert(conn, ANONYMOUS)
    stmt = stmt.on_conflict_do_update(  # type: ignore[attr-defined]
        index_elements=["day", "call"],
        set_={"count": ANONYMOUS.c.count + stmt.excluded["count"]},  # type: ignore[attr-defined]
    )
    conn.execute(stmt, [{"day": d, "call": c, "count": n} for (d, c), n in sorted(counts.items())])
