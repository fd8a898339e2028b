"""Failure-alert state and the step figures monitoring reads: recent failures by workflow
(over the partial index ix_step_runs_failed), the one guarded claim that lets a single
process alert, and due-but-undispatched steps (over ix_step_runs_due). Never commits."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Table, and_, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.alert_models import WorkflowAlert
from storage.workflow_models import Enrollment, StepRun

ALERTS: Table = WorkflowAlert.__table__  # type: ignore[assignment]
STEPS: Table = StepRun.__table__  # type: ignore[assignment]
ENROLLMENTS: Table = Enrollment.__table__  # type: ignore[assignment]


def failing(session: Session, *, since: datetime, threshold: int) -> list[tuple[int, int]]:
    """(workflow_id, failures) of each workflow with at least `threshold` step runs failed
    since `since`."""
    failures = func.count().label("failures")
    return [
        (int(workflow_id), int(n))
        for workflow_id, n in session.execute(
            select(ENROLLMENTS.c.workflow_id, failures)
            .select_from(STEPS.join(ENROLLMENTS, ENROLLMENTS.c.id == STEPS.c.enrollment_id))
            .where(STEPS.c.status == "failed", STEPS.c.finished_at >= since)
            .group_by(ENROLLMENTS.c.workflow_id)
            .having(failures >= threshold)
        )
    ]


def last_failure(session: Session, *, workflow_id: int, since: datetime) -> Row[Any] | None:
    """The workflow's latest failed step run since `since`: (step_index, error, finished_at)."""
    return session.execute(
        select(STEPS.c.step_index, STEPS.c.error, STEPS.c.finished_at)
        .select_from(STEPS.join(ENROLLMENTS, ENROLLMENTS.c.id == STEPS.c.enrollment_id))
        .where(
            STEPS.c.status == "failed",
            STEPS.c.finished_at >= since,
            ENROLLMENTS.c.workflow_id == workflow_id,
        )
        .order_by(STEPS.c.finished_at.desc(), STEPS.c.id.desc())
        .limit(1)
    ).one_or_none()  # type: ignore[return-value]


def claim(
    session: Session, *, workflow_id: int, failures: int, now: datetime, repeat_before: datetime
) -> bool:
    """Mark the workflow alerted now unless it was alerted after `repeat_before` and not
    re-armed since: one statement, so of several processes at once exactly one gets True."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(ALERTS).values(workflow_id=workflow_id, alerted_at=now, failures=failures)
    stmt = stmt.on_conflict_do_update(
        index_elements=["workflow_id"],
        set_={"alerted_at": now, "failures": failures},
        where=ALERTS.c.alerted_at.is_(None) | (ALERTS.c.alerted_at <= repeat_before),
    ).returning(ALERTS.c.workflow_id)
    return session.execute(stmt).first() is not None


def release(session: Session, *, workflow_id: int, alerted_at: datetime) -> None:
    """Undo this process's claim (its alert could not be sent): the next pass tries again."""
    session.execute(
        update(ALERTS)
        .where(ALERTS.c.workflow_id == workflow_id, ALERTS.c.alerted_at == alerted_at)
        .values(alerted_at=None)
    )


def rearm(session: Session, *, quiet_since: datetime) -> list[int]:
    """Clear the alert of each workflow alerted before `quiet_since` with no step run failed
    since: its next failure streak alerts again. Returns their ids."""
    failed_since = exists().where(
        STEPS.c.status == "failed",
        STEPS.c.finished_at > quiet_since,
        STEPS.c.enrollment_id == ENROLLMENTS.c.id,
        ENROLLMENTS.c.workflow_id == ALERTS.c.workflow_id,
    )
    return list(
        session.scalars(
            update(ALERTS)
            .where(
                ALERTS.c.alerted_at.is_not(None),
                ALERTS.c.alerted_at <= quiet_since,
                ~failed_since,
            )
            .values(alerted_at=None)
            .returning(ALERTS.c.workflow_id)
        )
    )


def due_times(session: Session, *, step_ids: Collection[int]) -> list[datetime]:
    """The `due_at` of these step runs (just dispatched: what the scheduler's lag is of)."""
    if not step_ids:
        return []
    return list(session.scalars(select(STEPS.c.due_at).where(STEPS.c.id.in_(step_ids))))


def overdue(session: Session, *, now: datetime) -> tuple[int, datetime | None]:
    """How many scheduled step runs are due and not dispatched, and the oldest `due_at`."""
    row = session.execute(
        select(func.count(), func.min(STEPS.c.due_at)).where(
            and_(STEPS.c.status == "scheduled", STEPS.c.due_at <= now)
        )
    ).one()
    return int(row[0]), row[1]
