"""drafts by enrollment: deleting a finished enrollment (retention) finds its drafts by index
instead of scanning the table

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """An index only: old workers keep running. IF NOT EXISTS: on a large database an
    operator may build it first, CONCURRENTLY (README, "Production")."""
    op.create_index("ix_drafts_enrollment", "drafts", ["enrollment_id"], if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_drafts_enrollment", table_name="drafts")
