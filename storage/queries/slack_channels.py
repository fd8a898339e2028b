"""Slack channels the bot posts to: names resolved once, and each channel's pacing slot
(about one message a second per channel, shared by every process through one row)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, select, update
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


def reserve_slot(
    session: Session, *, channel_id: str, now: datetime, spacing: timedelta = SPACING
) -> datetime:
    """Reserve the channel's next posting slot and return when it starts: `now` when the
    channel is free, else one spacing after the last reserved. The row is locked while it is
    read and moved on, so posts from every process to one channel take distinct slots (a
    thousand messages at once wait in a line, each woken once, not all every second)."""
    session.execute(
        _insert(session)
        .values(id=channel_id, name=None, next_post_at=None, updated_at=now)
        .on_conflict_do_nothing(index_elements=["id"])
    )
    pick = select(CHANNELS.c.next_post_at).where(CHANNELS.c.id == channel_id)
    if session.get_bind().dialect.name == "postgresql":
        pick = pick.with_for_update()
    taken = session.scalar(pick)
    slot = now if taken is None or taken <= now else taken
    session.execute(
        update(CHANNELS)
        .where(CHANNELS.c.id == channel_id)
        .values(next_post_at=slot + spacing, updated_at=now)
    )
    return slot
