"""workflows and their versions, enrollments, step runs, enrollment timeline, suppressions

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import storage.base

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """The workflow engine's tables; "once" and "one active" are partial unique indexes."""
    op.create_table(
        "suppressions",
        sa.Column("email_key", sa.String(length=320), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("created_at", storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("email_key", name=op.f("pk_suppressions")),
    )
    op.create_table(
        "workflows",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("name_key", sa.String(length=200), nullable=False),
        sa.Column("object_type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("trigger_kind", sa.String(length=16), nullable=False),
        sa.Column("trigger_key", sa.String(length=200), nullable=False),
        sa.Column("live_since", storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("disabled_at", storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflows")),
        sa.UniqueConstraint("name_key", name=op.f("uq_workflows_name_key")),
    )
    op.create_index(
        "ix_workflows_trigger",
        "workflows",
        ["object_type", "trigger_kind", "trigger_key"],
        unique=False,
        postgresql_where=sa.text("status = 'live' AND deleted_at IS NULL"),
        sqlite_where=sa.text("status = 'live' AND deleted_at IS NULL"),
    )
    op.create_table(
        "workflow_versions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "workflow_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column(
            "document",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name=op.f("fk_workflow_versions_workflow_id_workflows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_versions")),
    )
    op.create_index(
        "uq_workflow_versions_number", "workflow_versions", ["workflow_id", "number"], unique=True
    )
    op.create_table(
        "enrollments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "workflow_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "version_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("object_type", sa.String(length=16), nullable=False),
        sa.Column("object_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("once", sa.Boolean(), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("signal_id", sa.BigInteger(), nullable=True),
        sa.Column("enrolled_at", storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["workflow_versions.id"],
            name=op.f("fk_enrollments_version_id_workflow_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name=op.f("fk_enrollments_workflow_id_workflows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollments")),
    )
    op.create_index(
        "ix_enrollments_active_record",
        "enrollments",
        ["object_type", "object_id"],
        unique=False,
        postgresql_where=sa.text("status = 'active'"),
        sqlite_where=sa.text("status = 'active'"),
    )
    op.create_index(
        "ix_enrollments_workflow_status", "enrollments", ["workflow_id", "status"], unique=False
    )
    op.create_index(
        "uq_enrollments_active",
        "enrollments",
        ["workflow_id", "object_type", "object_id"],
        unique=True,
        postgresql_where=sa.text("status = 'active'"),
        sqlite_where=sa.text("status = 'active'"),
    )
    op.create_index(
        "uq_enrollments_once",
        "enrollments",
        ["workflow_id", "object_type", "object_id"],
        unique=True,
        postgresql_where=sa.text("once"),
        sqlite_where=sa.text("once"),
    )
    op.create_index(
        "uq_enrollments_signal",
        "enrollments",
        ["workflow_id", "signal_id"],
        unique=True,
        postgresql_where=sa.text("signal_id IS NOT NULL"),
        sqlite_where=sa.text("signal_id IS NOT NULL"),
    )
    op.create_table(
        "enrollment_logs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "enrollment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("at", storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column(
            "detail",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["enrollment_id"],
            ["enrollments.id"],
            name=op.f("fk_enrollment_logs_enrollment_id_enrollments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollment_logs")),
    )
    op.create_index(
        "ix_enrollment_logs_enrollment", "enrollment_logs", ["enrollment_id", "id"], unique=False
    )
    op.create_table(
        "step_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "enrollment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("due_at", storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("lease_until", storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "result",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("created_at", storage.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", storage.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["enrollment_id"],
            ["enrollments.id"],
            name=op.f("fk_step_runs_enrollment_id_enrollments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_step_runs")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_step_runs_idempotency_key")),
    )
    op.create_index(
        "ix_step_runs_due",
        "step_runs",
        ["due_at"],
        unique=False,
        postgresql_where=sa.text("status = 'scheduled'"),
        sqlite_where=sa.text("status = 'scheduled'"),
    )
    op.create_index(
        "ix_step_runs_lease",
        "step_runs",
        ["lease_until"],
        unique=False,
        postgresql_where=sa.text("status = 'running'"),
        sqlite_where=sa.text("status = 'running'"),
    )
    op.create_index("uq_step_runs_step", "step_runs", ["enrollment_id", "step_index"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_step_runs_step", table_name="step_runs")
    op.drop_index(
        "ix_step_runs_lease",
        table_name="step_runs",
        postgresql_where=sa.text("status = 'running'"),
        sqlite_where=sa.text("status = 'running'"),
    )
    op.drop_index(
        "ix_step_runs_due",
        table_name="step_runs",
        postgresql_where=sa.text("status = 'scheduled'"),
        sqlite_where=sa.text("status = 'scheduled'"),
    )
    op.drop_table("step_runs")
    op.drop_index("ix_enrollment_logs_enrollment", table_name="enrollment_logs")
    op.drop_table("enrollment_logs")
    op.drop_index(
        "uq_enrollments_signal",
        table_name="enrollments",
        postgresql_where=sa.text("signal_id IS NOT NULL"),
        sqlite_where=sa.text("signal_id IS NOT NULL"),
    )
    op.drop_index(
        "uq_enrollments_once",
        table_name="enrollments",
        postgresql_where=sa.text("once"),
        sqlite_where=sa.text("once"),
    )
    op.drop_index(
        "uq_enrollments_active",
        table_name="enrollments",
        postgresql_where=sa.text("status = 'active'"),
        sqlite_where=sa.text("status = 'active'"),
    )
    op.drop_index("ix_enrollments_workflow_status", table_name="enrollments")
    op.drop_index(
        "ix_enrollments_active_record",
        table_name="enrollments",
        postgresql_where=sa.text("status = 'active'"),
        sqlite_where=sa.text("status = 'active'"),
    )
    op.drop_table("enrollments")
    op.drop_index("uq_workflow_versions_number", table_name="workflow_versions")
    op.drop_table("workflow_versions")
    op.drop_index(
        "ix_workflows_trigger",
        table_name="workflows",
        postgresql_where=sa.text("status = 'live' AND deleted_at IS NULL"),
        sqlite_where=sa.text("status = 'live' AND deleted_at IS NULL"),
    )
    op.drop_table("workflows")
    op.drop_table("suppressions")
