"""Workspace configuration rows (stage list, health thresholds): read and upsert by key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import Configuration


def get(session: Session, *, key: str) -> Any:
    """The stored value, or None when the key was never set."""
    return session.scalar(select(Configuration.value).where(Configuration.key == key))


def put(session: Session, *, key: str, value: Any, now: datetime) -> None:
    """Set a key (insert or replace); never commits."""
    row = session.get(Configuration, key, with_for_update=True)
    if row is None:
        session.add(Configuration(key=key, value=value, updated_at=now))
    else:
        row.value = value
        row.updated_at = now
