"""Records as the workflow engine reads them: for rules (`RecordValues`, with the aggregates
the workflow needs) and for templates (plain data: `account`, `contact`, `owner`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import lifecycle
from engine.rules.ast import Aggregate
from engine.rules.records import RecordValues, from_row
from engine.rules.to_sql import aggregates_for
from engine.segments import table_for
from storage.models import Account, Contact, User
from storage.queries import records


def rule_views(
    session: Session,
    *,
    object_type: str,
    ids: Collection[int],
    aggregates: Sequence[Aggregate],
    with_account: bool,
    now: datetime,
) -> dict[int, RecordValues]:
    """id -> the record as rules read it: columns, traits, `aggregates` (one grouped query)
    and, for a contact with `with_account`, its account."""
    table = table_for(object_type)
    rows = records.by_ids(session, table=table, ids=ids)
    counted = aggregates_for(
        session.connection(), table=table, record_ids=list(rows), aggregates=aggregates, now=now
    )
    account_ids: set[int] = set()
    if object_type == "contact" and with_account:
        account_ids = {r.account_id for r in rows.values() if r.account_id is not None}
    return assemble(session, object_type, rows, counted, account_ids)


def assemble(
    session: Session,
    object_type: str,
    rows: Mapping[int, Any],
    counted: Mapping[int, Mapping[Aggregate, object]],
    account_ids: Collection[int],
) -> dict[int, RecordValues]:
    """RecordValues of record rows, with their aggregates and (contacts) the accounts of
    `account_ids` read in one query."""
    accounts = {
        aid: from_row(arow)
        for aid, arow in records.by_ids(
            session, table=table_for("account"), ids=account_ids
        ).items()
    }
    return {
        rid: from_row(
            row,
            aggregates=counted.get(rid),
            account=accounts.get(row.account_id) if object_type == "contact" else None,
        )
        for rid, row in rows.items()
    }


def _user(user: User | None) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"slack_id": user.slack_id, "email": user.email, "name": user.name}


def _record(session: Session, row: Account | Contact, health: lifecycle.Health) -> dict[str, Any]:
    """Traits first, then the built-ins over them (a shadowed trait stays under `traits`)."""
    owner = session.get(User, row.owner_id) if row.owner_id is not None else None
    data: dict[str, Any] = dict(row.traits or {})
    data.update(
        id=row.external_id,
        name=row.name,
        stage=row.stage,
        health_score=row.health_score,
        health=health.bucket(row.health_score),
        owner=_user(owner),
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        traits=dict(row.traits or {}),
    )
    if isinstance(row, Contact):
        data.update(email=row.email, first_name=row.first_name, last_name=row.last_name)
    return data


def _primary_contact(session: Session, account: Account) -> Contact | None:
    wanted = (account.traits or {}).get("primary_contact_id")
    if wanted is not None:
        found = session.scalar(
            select(Contact).where(
                Contact.external_id == str(wanted), Contact.account_id == account.id
            )
        )
        if found is not None:
            return found
    return session.scalar(
        select(Contact)
        .where(Contact.account_id == account.id)
        .order_by(Contact.created_at, Contact.id)
        .limit(1)
    )


def template_data(
    session: Session,
    *,
    object_type: str,
    record_id: int,
    health: lifecycle.Health,
    event: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """`account`, `contact` (for a contact workflow), `owner` and `event` (from an event
    signal's detail) as plain data, or None when the record is gone.
    `account.primary_contact` and `contact.account` are filled."""
    row: Account | Contact | None = (
        session.get(Account, record_id)
        if object_type == "account"
        else session.get(Contact, record_id)
    )
    if row is None:
        return None
    data: dict[str, Any] = {"event": None}
    record = _record(session, row, health)
    if isinstance(row, Contact):
        account = session.get(Account, row.account_id) if row.account_id is not None else None
        record["account"] = _record(session, account, health) if account is not None else None
        data["contact"] = record
        data["account"] = record["account"]
    else:
        primary = _primary_contact(session, row)
        record["primary_contact"] = (
            _record(session, primary, health) if primary is not None else None
        )
        data["account"] = record
    data["owner"] = record["owner"]
    if event is not None:
        contact_id = event.get("contact_id")
        contact = session.get(Contact, int(contact_id)) if contact_id is not None else None
        data["event"] = {
            "name": event.get("event"),
            "timestamp": event.get("timestamp"),
            "properties": event.get("properties") or {},
            "contact": _record(session, contact, health) if contact is not None else None,
        }
    return data
