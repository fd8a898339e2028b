"""The suppression list: addresses never to email, by their key (the casefolded address)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import Table, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.workflow_models import Suppression

SUPPRESSIONS: Table = Suppression.__table__  # type: ignore[assignment]


def email_key(email: str) -> str:
    """The key an address is listed under: stripped and casefolded (`Bob@X.com` is `bob@x.com`)."""
    return email.strip().casefold()


def add(session: Session, *, email: str, reason: str, by: str, now: datetime) -> bool:
    """List an address; False when its key was already listed (the row is left as it was)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = (
        dialect.insert(SUPPRESSIONS)
        .values(
            email_key=email_key(email),
            email=email.strip(),
            reason=reason,
            created_at=now,
            created_by=by,
        )
        .on_conflict_do_nothing(index_elements=["email_key"])
        .returning(SUPPRESSIONS.c.email_key)
    )
    return session.execute(stmt).first() is not None


def remove(session: Session, *, email: str) -> bool:
    """Unlist an address; False when it was not listed."""
    stmt = (
        delete(SUPPRESSIONS)
        .where(SUPPRESSIONS.c.email_key == email_key(email))
        .returning(SUPPRESSIONS.c.email_key)
    )
    return session.execute(stmt).first() is not None


def all_suppressions(session: Session) -> list[Suppression]:
    """Every listed address, by key."""
    return list(session.scalars(select(Suppression).order_by(Suppression.email_key)))


def suppressed(session: Session, *, emails: Collection[str]) -> set[str]:
    """The keys of those of `emails` that are listed, in one query (every send asks this)."""
    keys = sorted({email_key(e) for e in emails})
    if not keys:
        return set()
    return set(
        session.scalars(select(Suppression.email_key).where(Suppression.email_key.in_(keys)))
    )
