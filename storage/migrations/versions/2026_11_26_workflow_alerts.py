"""workflow alerts: one row per workflow alerted about failing steps (workflow_alerts), and a
partial index finding recent failed step runs (ix_step_runs_failed)

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.base

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """A new table and a small partial index (failed step runs only): old code keeps running."""
    op.create_table(
        "workflow_alerts",
        sa.Column(
            "workflow_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("alerted_at", storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name=op.f("fk_workflow_alerts_workflow_id_workflows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workflow_id", name=op.f("pk_workflow_alerts")),
    )
    condition = sa.text("status = 'failed'")
    op.create_index(
        "ix_step_runs_failed",
        "step_runs",
        ["finished_at"],
        unique=False,
        if_not_exists=True,
        postgresql_where=condition,
        sqlite_where=condition,
    )


def downgrade() -> None:
    op.drop_index("ix_step_runs_failed", table_name="step_runs")
    op.drop_table("workflow_alerts")
