"""Alert state: which workflows have been alerted about failing steps, so that several
schedulers alert once (engine.failure_alerts)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base
from storage.workflow_models import StepRun, _where


class WorkflowAlert(Base):
    """One workflow's failure alert: `alerted_at` is set by the one process that alerts (a
    guarded upsert) and cleared once the workflow has gone a window without failing."""

    __tablename__ = "workflow_alerts"

    workflow_id: Mapped[int] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), primary_key=True
    )
    alerted_at: Mapped[datetime | None]
    failures: Mapped[int] = mapped_column(Integer, default=0)  # counted when it alerted


# Recent failures are found by time without reading every finished step run.
Index("ix_step_runs_failed", StepRun.finished_at, **_where("status = 'failed'"))
