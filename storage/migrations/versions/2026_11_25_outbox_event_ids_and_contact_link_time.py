"""outbox event ids and contact link time

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 18:16:02.571185
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import storage.base

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
LINK_KEY = "$account"  # where 0001 kept the link time, inside trait_times


def upgrade() -> None:
    """One outbox row per commit lists its events; the link time gets a column of its own."""
    op.add_column(
        "contacts",
        sa.Column("account_linked_at", storage.base.UTCDateTime(timezone=True), nullable=True),
    )
    op.add_column("outbox", sa.Column("event_ids", JSON, nullable=True))
    bind = op.get_bind()
    array = "jsonb_build_array" if bind.dialect.name == "postgresql" else "json_array"
    op.execute(f"UPDATE outbox SET event_ids = {array}(event_id) WHERE event_id IS NOT NULL")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("event_id")
    _move_link_times(bind)


def _move_link_times(bind: sa.Connection) -> None:
    contacts = sa.table(
        "contacts",
        sa.column("id", sa.BigInteger()),
        sa.column("trait_times", JSON),
        sa.column("account_linked_at", storage.base.UTCDateTime(timezone=True)),
    )
    for row in bind.execute(sa.select(contacts.c.id, contacts.c.trait_times)):
        times = dict(row.trait_times or {})
        if LINK_KEY not in times:
            continue
        linked = datetime.fromisoformat(times.pop(LINK_KEY))
        bind.execute(
            contacts.update()
            .where(contacts.c.id == row.id)
            .values(trait_times=times, account_linked_at=linked)
        )


def downgrade() -> None:
    """Back to one event per outbox row (rows listing several keep their first event)."""
    op.add_column("outbox", sa.Column("event_id", sa.BigInteger(), nullable=True))
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("UPDATE outbox SET event_id = (event_ids->>0)::bigint")
    else:
        op.execute("UPDATE outbox SET event_id = json_extract(event_ids, '$[0]')")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("event_ids")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("account_linked_at")
