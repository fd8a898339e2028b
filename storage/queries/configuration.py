"""Workspace configuration rows (stage list, health thresholds): read and upsert by key."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import Configuration


def get(session: Session, *, key: str) -> Any:
    """The stored value, or None when the key was never set."""
    return session.scalar(select(Configuration.value).where(Configuration.key == key))


def get_many(session: Session, *, keys: Sequence[str]) -> dict[str, Any]:
    """The stored values of these keys (missing keys are absent), in one query."""
    rows = session.connection().execute(
        select(Configuration.key, Configuration.value).where(Configuration.key.in_(keys))
    )
    return {key: value for key, value in rows}


def put(session: Session, *, key: str, value: Any, now: datetime) -> None:
    """Set a key (insert or replace); never commits."""
    row = session.get(Configuration, key, with_for_update=True)
    if row is None:
        session.add(Configuration(key=key, value=value, updated_at=now))
    else:
        row.value = value
        row.updated_at = now
