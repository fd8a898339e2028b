"""stats rollup: per workflow x step x day figures (stats_days) and how far they go
(stats_rollups); indexes dating enrollments, step runs, drafts and email events

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.base

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES: list[tuple[str, str, list[str], str | None]] = [
    ("ix_enrollments_workflow_enrolled", "enrollments", ["workflow_id", "enrolled_at"], None),
    ("ix_enrollments_workflow_ended", "enrollments", ["workflow_id", "ended_at"], None),
    ("ix_step_runs_finished", "step_runs", ["finished_at"], "finished_at IS NOT NULL"),
    ("ix_drafts_workflow_created", "drafts", ["workflow_id", "created_at"], None),
    ("ix_drafts_workflow_decided", "drafts", ["workflow_id", "decided_at"], None),
    ("ix_drafts_workflow_sent", "drafts", ["workflow_id", "sent_at"], None),
    ("ix_email_events_at", "email_events", ["at"], None),
]


def upgrade() -> None:
    """New tables and indexes: old workers keep running. The first scheduler pass fills the
    rollup from the whole history."""
    op.create_table(
        "stats_days",
        sa.Column(
            "workflow_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name=op.f("fk_stats_days_workflow_id_workflows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "workflow_id", "day", "step_index", "kind", "key", name=op.f("pk_stats_days")
        ),
    )
    op.create_table(
        "stats_rollups",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("rolled_to", storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_stats_rollups")),
    )
    # IF NOT EXISTS: on a large database an operator may build them first, CONCURRENTLY
    # (README, "Statistics"), so that this migration does not block the workers' writes.
    for name, table, columns, where in _INDEXES:
        condition = None if where is None else sa.text(where)
        op.create_index(
            name,
            table,
            columns,
            unique=False,
            if_not_exists=True,
            postgresql_where=condition,
            sqlite_where=condition,
        )


def downgrade() -> None:
    for name, table, _, _ in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
    op.drop_table("stats_rollups")
    op.drop_table("stats_days")
