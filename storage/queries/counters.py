"""Named counters, each taken with one statement (fair across processes and threads)."""

from __future__ import annotations

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.action_models import Counter

COUNTERS: Table = Counter.__table__  # type: ignore[assignment]


def _insert(session: Session):  # type: ignore[no-untyped-def]
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(COUNTERS)


def take(session: Session, *, name: str) -> int:
    """The counter's next value (1, 2, 3, ...): an upsert that adds one and returns it, so
    two takes at once get two values."""
    stmt = _insert(session).values(name=name, value=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=["name"], set_={"value": COUNTERS.c.value + 1}
    ).returning(COUNTERS.c.value)
    return int(session.execute(stmt).scalar_one())


def remember(session: Session, *, name: str, value: int) -> int:
    """Store `value` under `name` unless a value is there; the value stored (first wins)."""
    session.execute(
        _insert(session)
        .values(name=name, value=value)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    return int(session.scalars(select(COUNTERS.c.value).where(COUNTERS.c.name == name)).one())


def recall(session: Session, *, name: str) -> int | None:
    return session.scalars(select(COUNTERS.c.value).where(COUNTERS.c.name == name)).one_or_none()
