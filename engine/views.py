"""Records as the workflow engine reads them: for rules (`RecordValues`, with the aggregates
the workflow needs) and for templates (plain data: `account`, `contact`, `owner`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
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


class _Rows:
    """The accounts, contacts and users a batch of renders reads, each loaded once."""

    def __init__(self, session: Session, health: lifecycle.Health) -> None:
        self.session, self.health = session, health
        self.accounts: dict[int, Account] = {}
        self.contacts: dict[int, Contact] = {}
        self.users: dict[int, User] = {}
        self.primary: dict[int, Contact] = {}

    def load(self, account_ids: Collection[int], contact_ids: Collection[int]) -> None:
        session = self.session
        if contact_ids:
            self.contacts |= {
                c.id: c for c in session.scalars(select(Contact).where(Contact.id.in_(contact_ids)))
            }
        account_ids = set(account_ids) | {
            c.account_id for c in self.contacts.values() if c.account_id is not None
        }
        if account_ids:
            self.accounts |= {
                a.id: a for a in session.scalars(select(Account).where(Account.id.in_(account_ids)))
            }
        records: list[Account | Contact] = [*self.accounts.values(), *self.contacts.values()]
        self._owners(records)

    def _owners(self, records: Collection[Account | Contact]) -> None:
        owners = {r.owner_id for r in records if r.owner_id is not None} - set(self.users)
        if owners:
            self.users |= {
                u.id: u for u in self.session.scalars(select(User).where(User.id.in_(owners)))
            }

    def load_primary(self, account_ids: Collection[int]) -> None:
        """Each account's primary contact: trait `primary_contact_id`, else the earliest."""
        if not account_ids:
            return
        wanted = {
            str(self.accounts[a].traits["primary_contact_id"]): a
            for a in account_ids
            if a in self.accounts and (self.accounts[a].traits or {}).get("primary_contact_id")
        }
        if wanted:
            for c in self.session.scalars(
                select(Contact).where(
                    Contact.external_id.in_(wanted), Contact.account_id.in_(wanted.values())
                )
            ):
                if c.account_id is not None and wanted.get(c.external_id) == c.account_id:
                    self.primary[c.account_id] = c
        rest = [a for a in account_ids if a not in self.primary]
        if rest:
            order = func.row_number().over(
                partition_by=Contact.account_id, order_by=(Contact.created_at, Contact.id)
            )
            ranked = (
                select(Contact.id, order.label("n")).where(Contact.account_id.in_(rest)).subquery()
            )
            for c in self.session.scalars(
                select(Contact).join(ranked, ranked.c.id == Contact.id).where(ranked.c.n == 1)
            ):
                assert c.account_id is not None
                self.primary[c.account_id] = c
        self._owners(list(self.primary.values()))

    def record(self, row: Account | Contact) -> dict[str, Any]:
        """Traits first, then the built-ins over them (a shadowed trait stays under `traits`)."""
        owner = self.users.get(row.owner_id) if row.owner_id is not None else None
        data: dict[str, Any] = dict(row.traits or {})
        data.update(
            id=row.external_id,
            name=row.name,
            stage=row.stage,
            health_score=row.health_score,
            health=self.health.bucket(row.health_score),
            owner=_user(owner),
            created_at=row.created_at,
            last_seen_at=row.last_seen_at,
            traits=dict(row.traits or {}),
        )
        if isinstance(row, Contact):
            data.update(email=row.email, first_name=row.first_name, last_name=row.last_name)
        return data


Wanted = tuple[str, int, Mapping[str, Any] | None]  # object type, record id, event detail


def template_data_many(
    session: Session, *, wanted: Sequence[Wanted], health: lifecycle.Health
) -> list[dict[str, Any] | None]:
    """`template_data` for several records, reading each table a few times for them all."""
    rows = _Rows(session, health)
    contact_ids = {rid for t, rid, _ in wanted if t == "contact"}
    contact_ids |= {int(e["contact_id"]) for _, _, e in wanted if e and e.get("contact_id")}
    rows.load({rid for t, rid, _ in wanted if t == "account"}, contact_ids)
    rows.load_primary({rid for t, rid, _ in wanted if t == "account"})
    found: list[dict[str, Any] | None] = []
    for object_type, record_id, event in wanted:
        row: Account | Contact | None = (
            rows.accounts.get(record_id)
            if object_type == "account"
            else rows.contacts.get(record_id)
        )
        if row is None:
            found.append(None)
            continue
        data: dict[str, Any] = {"event": None}
        record = rows.record(row)
        if isinstance(row, Contact):
            account = rows.accounts.get(row.account_id) if row.account_id is not None else None
            record["account"] = rows.record(account) if account is not None else None
            data["contact"] = record
            data["account"] = record["account"]
        else:
            primary = rows.primary.get(row.id)
            record["primary_contact"] = rows.record(primary) if primary is not None else None
            data["account"] = record
        data["owner"] = record["owner"]
        if event is not None:
            contact_id = event.get("contact_id")
            contact = rows.contacts.get(int(contact_id)) if contact_id is not None else None
            data["event"] = {
                "name": event.get("event"),
                "timestamp": event.get("timestamp"),
                "properties": event.get("properties") or {},
                "contact": rows.record(contact) if contact is not None else None,
            }
        found.append(data)
    return found


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
    return template_data_many(session, wanted=[(object_type, record_id, event)], health=health)[0]
