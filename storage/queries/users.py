"""Users (owners, approvers) and their connected accounts."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.action_models import Connection
from storage.models import Account, Contact, User

USERS: Table = User.__table__  # type: ignore[assignment]
CONNECTIONS: Table = Connection.__table__  # type: ignore[assignment]


def by_slack_id(session: Session, slack_id: str) -> User | None:
    return session.scalars(select(User).where(User.slack_id == slack_id)).one_or_none()


def by_email(session: Session, email: str) -> User | None:
    # Ingestion stores emails lowercased; a row set by hand is too.
    return session.scalars(select(User).where(User.email == email.strip().lower())).one_or_none()


def by_id(session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def all_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)))


def create(
    session: Session, *, slack_id: str | None, email: str | None, name: str | None, now: datetime
) -> User:
    user = User(
        slack_id=slack_id,
        email=email.strip().lower() if email else None,
        name=name,
        crm_ids={},
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    session.flush()
    return user


def merge_into(session: Session, *, keep: User, drop: User) -> None:
    """One person known twice (by Slack id, and by email): records owned by `drop` and its
    connections move to `keep`, then `drop` is deleted."""
    for model in (Account, Contact):
        session.execute(update(model).where(model.owner_id == drop.id).values(owner_id=keep.id))
    kept = set(session.scalars(select(Connection.provider).where(Connection.user_id == keep.id)))
    session.execute(
        update(Connection)
        .where(Connection.user_id == drop.id, Connection.provider.not_in(kept or {""}))
        .values(user_id=keep.id)
    )
    keep.crm_ids = {**(drop.crm_ids or {}), **(keep.crm_ids or {})}
    if not keep.name and drop.name:
        keep.name = drop.name
    session.execute(delete(User).where(User.id == drop.id))
    session.flush()


def connection(session: Session, *, user_id: int, provider: str) -> Connection | None:
    return session.scalars(
        select(Connection).where(Connection.user_id == user_id, Connection.provider == provider)
    ).one_or_none()


def connections_of(session: Session, *, user_ids: list[int]) -> dict[int, list[str]]:
    """user id -> the providers it connected."""
    found: dict[int, list[str]] = {}
    if user_ids:
        for row in session.execute(
            select(Connection.user_id, Connection.provider).where(Connection.user_id.in_(user_ids))
        ):
            found.setdefault(row.user_id, []).append(row.provider)
    return found


def save_connection(
    session: Session, *, user_id: int, provider: str, account: str, secret: str, now: datetime
) -> None:
    """Insert or replace the user's connection to `provider` (`secret` already encrypted)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    values: Mapping[str, Any] = {
        "user_id": user_id,
        "provider": provider,
        "account": account,
        "secret": secret,
        "created_at": now,
        "updated_at": now,
    }
    stmt = dialect.insert(CONNECTIONS).values(**values)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["user_id", "provider"],
            set_={"account": account, "secret": secret, "updated_at": now},
        )
    )


def update_secret(session: Session, *, connection_id: int, secret: str, now: datetime) -> None:
    session.execute(
        update(Connection)
        .where(Connection.id == connection_id)
        .values(secret=secret, updated_at=now)
    )


def find(session: Session, ref: str) -> User | None:
    """A user as a workflow file writes one: a Slack id (U…/W…) or an email address."""
    ref = ref.strip()
    if "@" in ref:
        return by_email(session, ref)
    return by_slack_id(session, ref)


def find_many(session: Session, refs: list[str]) -> dict[str, User]:
    """ref -> user, for those of `refs` that are known."""
    emails = [r.strip().lower() for r in refs if "@" in r]
    ids = [r.strip() for r in refs if "@" not in r]
    if not emails and not ids:
        return {}
    found = list(
        session.scalars(select(User).where(or_(User.email.in_(emails), User.slack_id.in_(ids))))
    )
    out: dict[str, User] = {}
    for ref in refs:
        key = ref.strip().lower() if "@" in ref else ref.strip()
        for user in found:
            if key in (user.email, user.slack_id):
                out[ref] = user
    return out
