"""Reads of records and events for evaluation: by id, in bulk, never locking rows."""

from __future__ import annotations

from collections.abc import Collection
from functools import lru_cache
from typing import Any

from sqlalchemy import Row, Table, bindparam, select
from sqlalchemy.orm import Session

from storage.queries.ingest import CONTACTS, EVENTS

RULE_COLUMNS = (
    "name",
    "stage",
    "health_score",
    "created_at",
    "last_seen_at",
    "email",
    "first_name",
    "last_name",
    "account_id",
)


def by_ids(
    session: Session, *, table: Table, ids: Collection[int], lock: bool = False
) -> dict[int, Row[Any]]:
    """id -> row with the columns rules read (built-ins, traits, a contact's account_id).

    With `lock`, the rows stay locked (FOR NO KEY UPDATE, in id order) until the transaction
    ends: row locks live in the rows, so a batch of any size fits in memory.
    """
    if not ids:
        return {}
    rows = session.connection().execute(_by_ids(table, lock), {"ids": sorted(ids)})
    return {row.id: row for row in rows}


@lru_cache(maxsize=8)  # built once per table: it runs on every evaluation
def _by_ids(table: Table, lock: bool) -> Any:
    columns = [table.c.id, table.c.traits, *(table.c[n] for n in RULE_COLUMNS if n in table.c)]
    stmt = (
        select(*columns)
        .where(table.c.id.in_(bindparam("ids", expanding=True)))
        .order_by(table.c.id)
    )
    if lock:
        stmt = stmt.with_for_update(key_share=True)  # FOR NO KEY UPDATE on PostgreSQL
    return stmt


def contacts_of(session: Session, *, account_ids: Collection[int]) -> list[tuple[int, int]]:
    """(contact id, account id) for every contact of these accounts."""
    if not account_ids:
        return []
    rows = session.execute(
        select(CONTACTS.c.id, CONTACTS.c.account_id).where(
            CONTACTS.c.account_id.in_(sorted(account_ids))
        )
    )
    return [(c, a) for c, a in rows]


def events_by_ids(session: Session, *, ids: Collection[int]) -> list[Row[Any]]:
    """The events of these ids (name, contact, account, timestamp, properties), by id."""
    if not ids:
        return []
    return list(
        session.execute(
            select(
                EVENTS.c.id,
                EVENTS.c.name,
                EVENTS.c.contact_id,
                EVENTS.c.account_id,
                EVENTS.c.timestamp,
                EVENTS.c.properties,
            )
            .where(EVENTS.c.id.in_(sorted(ids)))
            .order_by(EVENTS.c.id)
        )
    )
