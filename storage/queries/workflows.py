"""Workflows, their versions and their enrollment counts: lookups and plain reads."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.workflow_models import Enrollment, Workflow, WorkflowVersion

COUNTED = ("active", "completed", "exited", "failed")


def name_key(name: str) -> str:
    return name.strip().casefold()


def by_name(session: Session, *, name: str, deleted: bool = False) -> Workflow | None:
    """The workflow of this name (case-insensitively); a deleted one only with `deleted`."""
    stmt = select(Workflow).where(Workflow.name_key == name_key(name))
    if not deleted:
        stmt = stmt.where(Workflow.deleted_at.is_(None))
    return session.scalar(stmt)


def all_workflows(session: Session) -> list[Workflow]:
    """Every workflow not deleted, by name."""
    return list(
        session.scalars(
            select(Workflow).where(Workflow.deleted_at.is_(None)).order_by(Workflow.name_key)
        )
    )


def version(session: Session, *, workflow_id: int, number: int) -> WorkflowVersion | None:
    return session.scalar(
        select(WorkflowVersion).where(
            WorkflowVersion.workflow_id == workflow_id, WorkflowVersion.number == number
        )
    )


def versions(session: Session, *, workflow_id: int) -> list[WorkflowVersion]:
    """A workflow's versions, oldest first."""
    return list(
        session.scalars(
            select(WorkflowVersion)
            .where(WorkflowVersion.workflow_id == workflow_id)
            .order_by(WorkflowVersion.number)
        )
    )


def counts(session: Session, *, workflow_ids: Collection[int]) -> dict[int, dict[str, int]]:
    """workflow id -> enrolled (all) and how many are active, completed, exited, failed."""
    found: dict[int, dict[str, int]] = {
        wid: dict.fromkeys(("enrolled", *COUNTED), 0) for wid in workflow_ids
    }
    if not workflow_ids:
        return found
    rows = session.execute(
        select(Enrollment.workflow_id, Enrollment.status, func.count())
        .where(Enrollment.workflow_id.in_(sorted(workflow_ids)))
        .group_by(Enrollment.workflow_id, Enrollment.status)
    )
    for workflow_id, status, n in rows:
        found[workflow_id][status] = n
        found[workflow_id]["enrolled"] += n
    return found


def live_for(
    session: Session,
    *,
    object_types: Collection[str],
    kinds: Collection[str],
    keys: Collection[str],
) -> list[tuple[Workflow, int, dict[str, Any]]]:
    """Live workflows whose trigger index entry is among these (one query through the
    index), each with its current version's id and document."""
    rows = session.execute(
        select(Workflow, WorkflowVersion.id, WorkflowVersion.document)
        .join(
            WorkflowVersion,
            (WorkflowVersion.workflow_id == Workflow.id)
            & (WorkflowVersion.number == Workflow.version),
        )
        .where(
            Workflow.status == "live",
            Workflow.deleted_at.is_(None),
            Workflow.object_type.in_(sorted(object_types)),
            Workflow.trigger_kind.in_(sorted(kinds)),
            Workflow.trigger_key.in_(sorted(keys)),
        )
    )
    return [(w, vid, doc) for w, vid, doc in rows]


def documents(session: Session, *, workflows: Collection[Workflow]) -> dict[int, dict[str, Any]]:
    """workflow id -> its current version's document."""
    if not workflows:
        return {}
    current = {(w.id, w.version) for w in workflows}
    rows = session.execute(
        select(WorkflowVersion.workflow_id, WorkflowVersion.number, WorkflowVersion.document).where(
            WorkflowVersion.workflow_id.in_(sorted(w.id for w in workflows))
        )
    )
    return {wid: doc for wid, number, doc in rows if (wid, number) in current}


def using_segment(session: Session, *, segment_id: int) -> list[str]:
    """Names of the workflows (not deleted) whose trigger is this segment."""
    return list(
        session.scalars(
            select(Workflow.name)
            .where(
                Workflow.trigger_kind.in_(["segment_enter", "segment_leave"]),
                Workflow.trigger_key == str(segment_id),
                Workflow.deleted_at.is_(None),
            )
            .order_by(Workflow.name_key)
        )
    )
