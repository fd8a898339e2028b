"""Slack channels the bot posts to: names resolved once, and each channel's pacing slot
(about one message a second per channel, shared by every process through one row)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.action_models import SlackChannel

CHANNELS: Table = SlackChannel.__table__  # type: ignore[assignment]
SPACING = timedelta(seconds=1)


def _insert(session: Session) -> Any:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(CHANNELS)


def cached_id(session: Session, *, name: str) -> str | None:
    """The id last remembered for `#name` (without the `#`), or None."""
    return session.scalars(
        select(CHANNELS.c.id)
        .where(CHANNELS.c.name == name)
        .order_by(CHANNELS.c.updated_at.desc())
        .limit(1)
    ).first()


def remember(session: Session, *, channel_id: str, name: str, now: datetime) -> None:
    """Record that `#name` is `channel_id` (another channel that had the name loses it);
    the channel's pacing slot is kept."""
    session.execute(
        update(CHANNELS)
        .where(CHANNELS.c.name == name, CHANNELS.c.id != channel_id)
        .values(name=None, updated_at=now)
    )
    stmt = _insert(session).values(id=channel_id, name=name, next_post_at=None, updated_at=now)
    session.execute(
        stmt.on_conflict_do_update(index_elements=["id"], set_={"name": name, "updated_at": now})
    )


def take_slot(
    session: Session, *, channel_id: str, now: datetime, spacing: timedelta = SPACING
) -> datetime | None:
    """Take the channel's next posting slot: None when taken (the next one is then
    `now + spacing`), else the time the current slot frees. One guarded upsert decides, so
    processes posting to one channel at once take turns."""
    stmt = _insert(session).values(
        id=channel_id, name=None, next_post_at=now + spacing, updated_at=now
    )
    taken = session.execute(
        stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={"next_post_at": now + spacing, "updated_at": now},
            where=or_(CHANNELS.c.next_post_at.is_(None), CHANNELS.c.next_post_at <= now),
        ).returning(CHANNELS.c.id)
    ).first()
    if taken is not None:
        return None
    free_at = session.scalar(select(CHANNELS.c.next_post_at).where(CHANNELS.c.id == channel_id))
    # Not taken means a later slot is held; a clock far behind another process's could read
    # one that is already past: come back one spacing later rather than at once.
    return free_at if free_at is not None and free_at > now else now + spacing
