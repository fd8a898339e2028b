"""Insight's rollup: per workflow x step x day, the counts `engine.stats` reports, kept by the
scheduler so a year of history reads in milliseconds.

One row is one figure: (workflow, local day, step index (-1 for the workflow itself), kind,
key) -> n. `kind` names the figure (enrolled, completed, exited, run, skipped, wait, sent,
opened, ...); `key` splits it (an exit or skip reason, a wait histogram bucket) or is ''.
The same query makes the rows for the rollup and for the live part of a report, so the two
can only agree.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.action_models import Draft, EmailEvent
from storage.base import Base
from storage.workflow_models import Enrollment, StepRun, _where


class StatsDay(Base):
    """One figure of one workflow (step) on one day, in the rollup's TIMEZONE."""

    __tablename__ = "stats_days"

    workflow_id: Mapped[int] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    step_index: Mapped[int] = mapped_column(Integer, primary_key=True)  # -1: the workflow
    kind: Mapped[str] = mapped_column(String(24), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


class StatsRollup(Base):
    """How far the rollup goes: every whole day ending at or before `rolled_to` (cut in
    `timezone`) is in stats_days, as the rows committed by `updated_at` made it."""

    __tablename__ = "stats_rollups"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)  # "days"
    timezone: Mapped[str] = mapped_column(String(64))
    rolled_to: Mapped[datetime]
    updated_at: Mapped[datetime]


# The indexes the rollup and a report's live part read by, declared with the code that needs
# them: each source row is found by (workflow, the time that dates it).
Index("ix_enrollments_workflow_enrolled", Enrollment.workflow_id, Enrollment.enrolled_at)
Index("ix_enrollments_workflow_ended", Enrollment.workflow_id, Enrollment.ended_at)
Index("ix_step_runs_finished", StepRun.finished_at, **_where("finished_at IS NOT NULL"))
Index("ix_drafts_workflow_created", Draft.workflow_id, Draft.created_at)
Index("ix_drafts_workflow_decided", Draft.workflow_id, Draft.decided_at)
Index("ix_drafts_workflow_sent", Draft.workflow_id, Draft.sent_at)
Index("ix_email_events_at", EmailEvent.at)
