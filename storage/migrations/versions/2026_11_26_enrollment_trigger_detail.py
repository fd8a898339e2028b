"""enrollments keep what enrolled them (the signal's detail, e.g. the event) for templates

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.base

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Signals are purged after 30 days; a step three weeks later still renders `event.*`."""
    op.add_column(
        "enrollments",
        sa.Column("trigger", storage.base.JSONType, nullable=False, server_default="{}"),
    )
    op.create_index(
        "ix_step_runs_queued",
        "step_runs",
        ["lease_until"],
        postgresql_where=sa.text("status IN ('queued', 'sending')"),
        sqlite_where=sa.text("status IN ('queued', 'sending')"),
    )


def downgrade() -> None:
    op.drop_index("ix_step_runs_queued", table_name="step_runs")
    op.drop_column("enrollments", "trigger")
