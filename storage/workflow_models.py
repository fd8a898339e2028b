"""The workflow engine's tables: workflows and their versions, enrollments, step runs, the
enrollment timeline, and the suppression list.

Invariants live in the schema: "once" is a unique index on (workflow, record) over once
enrollments, "never two active at once" a unique index over active ones, and a signal
enrolls a record at most once per workflow. A pending step is a row with `due_at`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base, JSONType
from storage.models import Id


def _where(condition: str) -> dict[str, Any]:
    """A partial index's condition, on both databases."""
    return {"postgresql_where": text(condition), "sqlite_where": text(condition)}


class Workflow(Base):
    """A workflow's identity: name, status and the current version; kept when deleted."""

    __tablename__ = "workflows"
    __table_args__ = (
        # The trigger index: signals find live workflows by (object, kind, key), never by scan.
        Index(
            "ix_workflows_trigger",
            "object_type",
            "trigger_kind",
            "trigger_key",
            **_where("status = 'live' AND deleted_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # casefold(name): unique across deleted ones too, so a re-created name revives its workflow
    # (and "once" keeps meaning once).
    name_key: Mapped[str] = mapped_column(String(200), unique=True)
    object_type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))  # draft | live | disabled
    version: Mapped[int] = mapped_column(Integer)  # the current version's number
    trigger_kind: Mapped[str] = mapped_column(String(16))  # segment | stage | health | event
    trigger_key: Mapped[str] = mapped_column(String(200))  # the signal key it listens to
    live_since: Mapped[datetime | None]  # signals before this never enroll
    disabled_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class WorkflowVersion(Base):
    """One saved document of a workflow: who saved it, when, and what changed."""

    __tablename__ = "workflow_versions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workflow_id: Mapped[int] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (Index("uq_workflow_versions_number", "workflow_id", "number", unique=True),)


class Enrollment(Base):
    """A record going through one version of a workflow."""

    __tablename__ = "enrollments"
    __table_args__ = (
        Index(
            "uq_enrollments_once",
            "workflow_id",
            "object_type",
            "object_id",
            unique=True,
            **_where("once"),
        ),
        Index(
            "uq_enrollments_active",
            "workflow_id",
            "object_type",
            "object_id",
            unique=True,
            **_where("status = 'active'"),
        ),
        Index(
            "uq_enrollments_signal",
            "workflow_id",
            "signal_id",
            unique=True,
            **_where("signal_id IS NOT NULL"),
        ),
        Index(
            "ix_enrollments_active_record",
            "object_type",
            "object_id",
            **_where("status = 'active'"),
        ),
        Index("ix_enrollments_workflow_status", "workflow_id", "status"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workflow_id: Mapped[int] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    version_id: Mapped[int] = mapped_column(ForeignKey("workflow_versions.id"))
    object_type: Mapped[str] = mapped_column(String(16))
    object_id: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))  # active | completed | exited | failed
    once: Mapped[bool] = mapped_column(Boolean)  # enrolled under `enrollment: once`
    via: Mapped[str] = mapped_column(String(16))  # signal | manual | existing
    signal_id: Mapped[int | None] = mapped_column(BigInteger)
    # What enrolled it (a signal's kind, key and detail: the event for `event.*`), kept after
    # the signal itself is purged.
    trigger: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, server_default="{}")
    enrolled_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(Text)


class StepRun(Base):
    """One step of one enrollment: pending until `due_at`, then claimed, run, finished.

    status: scheduled -> queued (dispatched) -> running -> done | skipped | failed, or back to
    scheduled with attempt + 1 (a retry); held while the workflow is disabled, paused while
    every send is paused (pause-all); cancelled on exit; sending -> unknown for at-most-once
    actions; waiting while an email draft waits for approval; attention when a person must
    fix something first (no Gmail connection, a missing template value). `lease_until`
    bounds a dispatch or a run: a queued or running row past it is requested again, a sending
    one becomes unknown (never resent by itself).
    """

    __tablename__ = "step_runs"
    __table_args__ = (
        Index("uq_step_runs_step", "enrollment_id", "step_index", unique=True),
        Index("ix_step_runs_due", "due_at", **_where("status = 'scheduled'")),
        Index("ix_step_runs_lease", "lease_until", **_where("status = 'running'")),
        Index("ix_step_runs_queued", "lease_until", **_where("status IN ('queued', 'sending')")),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"))
    step_index: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime]
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    # How many times a worker claimed it: above 1 at the same attempt, an earlier run died
    # or lost its lease mid-call (an action may then look for its own earlier effect).
    claims: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    lease_until: Mapped[datetime | None]
    # The effect's key: the same on every attempt, never the same for two steps.
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class EnrollmentLog(Base):
    """One line of an enrollment's timeline: enrolled, scheduled, run, skipped, failed,
    retried, held, resumed, exited, completed."""

    __tablename__ = "enrollment_logs"
    __table_args__ = (Index("ix_enrollment_logs_enrollment", "enrollment_id", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    step_index: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class Suppression(Base):
    """An address never to email (unsubscribed, bounced, or added by hand)."""

    __tablename__ = "suppressions"

    email_key: Mapped[str] = mapped_column(String(320), primary_key=True)  # casefold(email)
    email: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))
