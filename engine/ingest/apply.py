"""Apply accepted calls to storage in one transaction: dedupe, upsert, merge traits, outbox.

Traits merge per trait: a trait not sent is kept, `null` clears it, and a call only
overwrites a trait that was last set by a call no more recent than itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Row, Table

from engine.ingest.schema import SLACK_USER_ID, Change, as_number, parse_timestamp
from storage.queries import ingest as q


@dataclass(slots=True)
class Applied:
    """What one transaction stored: outbox ids to enqueue after commit, and counts."""

    outbox_ids: list[int] = field(default_factory=list)
    events: int = 0
    records: int = 0
    repeats: int = 0
    anonymous: int = 0


def apply_changes(
    conn: Connection, changes: Sequence[Change], *, now: datetime, signals: bool = True
) -> Applied:
    """Store a group of changes inside the caller's transaction (never commits)."""
    applied = Applied()
    live = _fresh(conn, changes, now=now, applied=applied)
    if not live:
        return applied
    if all(c.event is not None for c in live):
        event_rows = [
            {
                "message_id": c.message_id,
                "name": c.event,
                "user": c.contact,
                "group": c.account,
                "timestamp": c.at,
                "properties": c.properties or {},
            }
            for c in live
        ]
        stored = q.store_event_group(conn, rows=event_rows, signals=signals, now=now)
        if stored is not None:
            applied.events, applied.outbox_ids = stored
            applied.repeats += len(event_rows) - applied.events
            return applied

    # Lock order, the same in every writer: contacts, then accounts, each sorted; every
    # account this transaction touches is locked by the one account upsert (no deadlock).
    contacts = q.upsert_records(conn, table=q.CONTACTS, seen=_seen(live, "contact"), now=now)
    account_seen = _seen(live, "account")
    reached = [
        contacts[c.contact].account_id
        for c in live
        if c.event is not None and c.account is None and c.contact is not None
    ]
    for external_id in q.account_external_ids(conn, ids=reached):
        account_seen.setdefault(external_id, (now, None))
    accounts = q.upsert_records(conn, table=q.ACCOUNTS, seen=account_seen, now=now)
    users = _users(conn, live, now=now)
    outbox: list[dict[str, Any]] = []

    account_writes = [c for c in live if c.account_traits is not None]
    account_rows = _merge(conn, q.ACCOUNTS, "account", accounts, account_writes, users, now, outbox)
    contact_writes = [c for c in live if c.contact_traits is not None or c.link]
    contact_rows = _merge(
        conn, q.CONTACTS, "contact", contacts, contact_writes, users, now, outbox, accounts
    )
    for rows in (account_rows, contact_rows):
        applied.records += len(rows)

    event_rows, bumps = _events(live, accounts, contacts, contact_rows)
    event_ids = q.insert_events(conn, rows=event_rows, now=now)
    applied.events = len(event_ids)
    applied.repeats += len(event_rows) - len(event_ids)
    q.bump_last_seen(conn, table=q.ACCOUNTS, seen=bumps)
    if event_ids:
        outbox.append(_outbox_row(event_ids=sorted(event_ids.values())))
    applied.outbox_ids = q.insert_outbox(conn, rows=outbox, signals=signals, now=now)
    return applied


def _fresh(
    conn: Connection, changes: Sequence[Change], *, now: datetime, applied: Applied
) -> list[Change]:
    """Drop repeats (same messageId), count anonymous calls; return the changes to store."""
    unique: list[Change] = []
    message_ids: set[str] = set()
    for change in changes:
        if change.message_id in message_ids:
            applied.repeats += 1
        else:
            message_ids.add(change.message_id)
            unique.append(change)
    # Events are deduplicated by their own unique messageId; other calls by ingest_messages.
    fresh = q.claim_message_ids(
        conn,
        ids=(
            c.message_id for c in unique if (c.event is None or c.anonymous) and not c.generated_id
        ),
        now=now,
    )
    anonymous: Counter[tuple[date, str]] = Counter()
    live: list[Change] = []
    for change in unique:
        if (change.event is None or change.anonymous) and not (
            change.generated_id or change.message_id in fresh
        ):
            applied.repeats += 1
        elif change.anonymous:
            anonymous[(change.at.date(), change.call)] += 1
        else:
            live.append(change)
    applied.anonymous = sum(anonymous.values())
    q.count_anonymous(conn, counts=anonymous)
    return live


def _outbox_row(
    *,
    object_type: str | None = None,
    object_id: int | None = None,
    event_ids: list[int] | None = None,
    changes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "object_type": object_type,
        "object_id": object_id,
        "event_ids": event_ids,
        "changes": changes,
    }


def _seen(changes: Iterable[Change], kind: str) -> dict[str, tuple[datetime, datetime | None]]:
    """External id -> (earliest time of any call, latest event time) for one record kind."""
    seen: dict[str, tuple[datetime, datetime | None]] = {}
    for change in changes:
        key = change.account if kind == "account" else change.contact
        if key is None:
            continue
        event_at = change.at if change.event is not None else None
        first, last = seen.get(key, (change.at, None))
        if event_at is not None and (last is None or event_at > last):
            last = event_at
        seen[key] = (min(first, change.at), last)
    return seen


def _users(conn: Connection, changes: Iterable[Change], *, now: datetime) -> dict[str, int]:
    slack_ids: set[str] = set()
    emails: set[str] = set()
    for change in changes:
        for traits in (change.account_traits, change.contact_traits):
            owner = (traits or {}).get("owner")
            if isinstance(owner, str):
                (slack_ids if SLACK_USER_ID.match(owner) else emails).add(_owner_key(owner))
    return q.ensure_users(conn, slack_ids=slack_ids, emails=emails, now=now)


def _owner_key(owner: str) -> str:
    return owner if SLACK_USER_ID.match(owner) else owner.strip().lower()


def _merge(
    conn: Connection,
    table: Table,
    kind: str,
    upserted: dict[str, Row[Any]],
    writes: list[Change],
    users: dict[str, int],
    now: datetime,
    outbox: list[dict[str, Any]],
    accounts: dict[str, Row[Any]] | None = None,
) -> dict[int, dict[str, Any]]:
    """Merge trait writes into locked rows, write back what changed; returns id -> new row."""
    by_id: dict[int, list[Change]] = {}
    for change in writes:
        key = change.account if kind == "account" else change.contact
        assert key is not None
        by_id.setdefault(upserted[key].id, []).append(change)
    created = {row.id for row in upserted.values() if row.created}
    for record_id in sorted(created - set(by_id)):
        # A record first seen through an event or a link: nothing to merge, only news.
        outbox.append(_outbox_row(object_type=kind, object_id=record_id, changes={"created": True}))
    if not by_id:
        return {}
    merged: dict[int, dict[str, Any]] = {}
    updates = []
    for row in q.lock_records(conn, table=table, ids=by_id):
        traits, times = dict(row.traits), dict(row.trait_times)
        new_account_id = getattr(row, "account_id", None)
        linked_at: datetime | None = getattr(row, "account_linked_at", None)
        changed_traits: set[str] = set()
        for change in by_id.get(row.id, []):
            incoming = change.account_traits if kind == "account" else change.contact_traits
            changed_traits |= merge_traits(traits, times, incoming or {}, change.at)
            if kind == "contact" and change.link and accounts is not None:
                assert change.account is not None
                if linked_at is None or change.at >= linked_at:
                    linked_at = change.at
                    new_account_id = accounts[change.account].id
        values = builtins(kind, traits, users, first_seen=row.first_seen_at)
        if kind == "contact":
            values["account_id"] = new_account_id
        diff = {k: [getattr(row, k), v] for k, v in values.items() if getattr(row, k) != v}
        values.update(traits=traits, trait_times=times)
        if kind == "contact":
            values["account_linked_at"] = linked_at
        merged[row.id] = values
        unchanged = times == row.trait_times and linked_at == getattr(
            row, "account_linked_at", None
        )
        if not diff and not changed_traits and unchanged and row.id not in created:
            continue
        values["updated_at"] = now
        updates.append({"id": row.id, **values})
        report: dict[str, Any] = {k: _jsonable(v) for k, v in diff.items() if k != "created_at"}
        if changed_traits:
            report["traits"] = sorted(changed_traits)
        if row.id in created:
            report["created"] = True
        if report:
            outbox.append(_outbox_row(object_type=kind, object_id=row.id, changes=report))
    q.update_records(conn, table=table, rows=updates)
    return merged


def _jsonable(pair: list[Any]) -> list[Any]:
    return [v.isoformat() if isinstance(v, datetime) else v for v in pair]


def _newer(times: dict[str, Any], key: str, at: datetime) -> bool:
    last = times.get(key)
    if last is None:
        return True
    last_at = parse_timestamp(last)
    return last_at is None or at >= last_at


def merge_traits(
    traits: dict[str, Any], times: dict[str, Any], incoming: dict[str, Any], at: datetime
) -> set[str]:
    """Merge `incoming` sent at `at` into traits in place; returns the trait names changed."""
    changed = set()
    for key, value in incoming.items():
        if not _newer(times, key, at):
            continue
        times[key] = at.isoformat()
        if value is None:
            if key in traits:
                del traits[key]
                changed.add(key)
        elif traits.get(key, _MISSING) != value:
            traits[key] = value
            changed.add(key)
    return changed


_MISSING = object()


def builtins(
    kind: str, traits: dict[str, Any], users: dict[str, int], *, first_seen: datetime
) -> dict[str, Any]:
    """The built-in columns a record's traits imply (see workflow-format.md, Built-in fields)."""
    first = _text(traits.get("first_name", traits.get("firstName")))
    last = _text(traits.get("last_name", traits.get("lastName")))
    name = _text(traits.get("name"))
    if name is None and kind == "contact" and (first or last):
        name = " ".join(part for part in (first, last) if part)
    owner = traits.get("owner")
    stage = _text(traits.get("stage"))
    created = parse_timestamp(traits.get("created_at", traits.get("createdAt")))
    values: dict[str, Any] = {
        "name": name,
        "stage": stage,
        "health_score": as_number(traits.get("health_score")),
        "owner_id": users.get(_owner_key(owner)) if isinstance(owner, str) else None,
        "created_at": created or first_seen,
    }
    if kind == "contact":
        email = _text(traits.get("email"))
        values.update(email=email.lower() if email else None, first_name=first, last_name=last)
    return values


def _text(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _events(
    changes: Iterable[Change],
    accounts: dict[str, Row[Any]],
    contacts: dict[str, Row[Any]],
    merged_contacts: dict[int, dict[str, Any]],
) -> tuple[list[dict[str, Any]], dict[int, datetime]]:
    """Event rows to insert, and accounts reached through their contact whose last_seen moves."""
    rows = []
    account_seen: dict[int, datetime] = {}
    for change in changes:
        if change.event is None:
            continue
        assert change.contact is not None
        contact = contacts[change.contact]
        if change.account is not None:
            account_id = accounts[change.account].id
        else:
            merged = merged_contacts.get(contact.id)
            account_id = merged["account_id"] if merged else contact.account_id
            if account_id is not None:
                account_seen[account_id] = max(change.at, account_seen.get(account_id, change.at))
        rows.append(
            {
                "message_id": change.message_id,
                "name": change.event,
                "contact_id": contact.id,
                "account_id": account_id,
                "timestamp": change.at,
                "properties": change.properties or {},
            }
        )
    return rows, account_seen
