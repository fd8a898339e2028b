"""Enrollments and their timeline: inserted once (the unique indexes decide), ended by a
guarded UPDATE, read by record and by workflow."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Table, func, insert, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.queries import drafts
from storage.workflow_models import Enrollment, EnrollmentLog, StepRun, Workflow, WorkflowVersion

ENROLLMENTS: Table = Enrollment.__table__  # type: ignore[assignment]
LOGS: Table = EnrollmentLog.__table__  # type: ignore[assignment]
STEPS: Table = StepRun.__table__  # type: ignore[assignment]
# A step not yet final: cancelled when its enrollment ends.
PENDING = ("scheduled", "queued", "held", "paused", "waiting", "attention")


def _insert(session: Session, table: Table) -> Any:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def insert_new(session: Session, *, rows: Sequence[dict[str, Any]]) -> list[Row[Any]]:
    """Insert enrollments; a row that would break "once", "one active" or "a signal enrolls
    once" is dropped by the database. Returns the inserted rows (id, workflow_id, version_id,
    object_type, object_id, signal_id, enrolled_at)."""
    if not rows:
        return []
    stmt = (
        _insert(session, ENROLLMENTS)
        .on_conflict_do_nothing()
        .returning(
            ENROLLMENTS.c.id,
            ENROLLMENTS.c.workflow_id,
            ENROLLMENTS.c.version_id,
            ENROLLMENTS.c.object_type,
            ENROLLMENTS.c.object_id,
            ENROLLMENTS.c.signal_id,
            ENROLLMENTS.c.enrolled_at,
        )
    )
    # Rows come back unordered; each names its workflow, record and signal.
    return list(session.execute(stmt, list(rows)).all())


def log(session: Session, *, rows: Sequence[dict[str, Any]]) -> None:
    """Append timeline lines (enrollment_id, at, kind, step_index, message, detail)."""
    if rows:
        session.execute(insert(LOGS), [{"detail": {}, "step_index": None, **r} for r in rows])


def active_for(session: Session, *, records: Collection[tuple[str, int]]) -> list[Row[Any]]:
    """Active enrollments of these (object_type, object_id) records, with their workflow's
    status: id, workflow_id, version_id, object_type, object_id, workflow_status."""
    if not records:
        return []
    return list(
        session.execute(
            select(
                Enrollment.id,
                Enrollment.workflow_id,
                Enrollment.version_id,
                Enrollment.object_type,
                Enrollment.object_id,
                Workflow.status.label("workflow_status"),
            )
            .join(Workflow, Workflow.id == Enrollment.workflow_id)
            .where(
                Enrollment.status == "active",
                tuple_(Enrollment.object_type, Enrollment.object_id).in_(sorted(records)),
            )
            .order_by(Enrollment.id)
        )
    )


def active_of(
    session: Session, *, workflow_id: int | None, object_type: str, object_id: int
) -> list[Enrollment]:
    """Active enrollments of one record (in one workflow, or in all)."""
    stmt = select(Enrollment).where(
        Enrollment.status == "active",
        Enrollment.object_type == object_type,
        Enrollment.object_id == object_id,
    )
    if workflow_id is not None:
        stmt = stmt.where(Enrollment.workflow_id == workflow_id)
    return list(session.scalars(stmt.order_by(Enrollment.id)))


def last_enrolled(
    session: Session, *, pairs: Collection[tuple[int, str, int]]
) -> dict[tuple[int, str, int], datetime]:
    """(workflow_id, object_type, object_id) -> when it last enrolled, for those that did."""
    if not pairs:
        return {}
    rows = session.execute(
        select(
            Enrollment.workflow_id,
            Enrollment.object_type,
            Enrollment.object_id,
            func.max(Enrollment.enrolled_at),
        )
        .where(
            tuple_(Enrollment.workflow_id, Enrollment.object_type, Enrollment.object_id).in_(
                sorted(pairs)
            )
        )
        .group_by(Enrollment.workflow_id, Enrollment.object_type, Enrollment.object_id)
    )
    return {(w, t, o): at for w, t, o, at in rows}


def version_documents(
    session: Session, *, version_ids: Collection[int]
) -> dict[int, dict[str, Any]]:
    """version id -> its document."""
    if not version_ids:
        return {}
    rows = session.execute(
        select(WorkflowVersion.id, WorkflowVersion.document).where(
            WorkflowVersion.id.in_(sorted(version_ids))
        )
    )
    return {vid: doc for vid, doc in rows}


def end(
    session: Session, *, ids: Collection[int], status: str, reason: str, now: datetime
) -> list[int]:
    """Move active enrollments to `status` (completed, exited, failed) and cancel their
    pending steps; returns the ids this call moved (an ended one is never moved again)."""
    if not ids:
        return []
    moved = list(
        session.scalars(
            update(ENROLLMENTS)
            .where(ENROLLMENTS.c.id.in_(sorted(ids)), ENROLLMENTS.c.status == "active")
            .values(status=status, ended_at=now, end_reason=reason)
            .returning(ENROLLMENTS.c.id)
        )
    )
    if moved:
        session.execute(
            update(STEPS)
            .where(STEPS.c.enrollment_id.in_(moved), STEPS.c.status.in_(PENDING))
            .values(status="cancelled", finished_at=now, lease_until=None)
        )
        drafts.withdraw(session, enrollment_ids=moved, now=now)
    return moved


def timeline(session: Session, *, enrollment_ids: Collection[int]) -> list[EnrollmentLog]:
    """Log lines of these enrollments, in order."""
    if not enrollment_ids:
        return []
    return list(
        session.scalars(
            select(EnrollmentLog)
            .where(EnrollmentLog.enrollment_id.in_(sorted(enrollment_ids)))
            .order_by(EnrollmentLog.enrollment_id, EnrollmentLog.id)
        )
    )


def of_workflow(
    session: Session,
    *,
    workflow_id: int,
    object_type: str | None = None,
    object_id: int | None = None,
    limit: int = 20,
    offset: int = 0,
) -> list[Enrollment]:
    """A workflow's enrollments, newest first (of one record when given), skipping the
    `offset` newest."""
    stmt = select(Enrollment).where(Enrollment.workflow_id == workflow_id)
    if object_type is not None and object_id is not None:
        stmt = stmt.where(Enrollment.object_type == object_type, Enrollment.object_id == object_id)
    stmt = stmt.order_by(Enrollment.id.desc()).limit(limit).offset(offset)
    return list(session.scalars(stmt))
