"""Workflows as stored: versions, status, the trigger index, rename, soft delete, rollback.

A workflow's identity (its row) outlives its versions, names and deletion, so "once" keeps
meaning once. Saving a changed document makes a new version; running enrollments keep the
version they started on. `status` in a document is the wanted state, not versioned content.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.orm import Session

from engine import control, lifecycle
from engine.workflow_defs import (
    ANY_KEY,
    EventTrigger,
    HealthTrigger,
    SegmentTrigger,
    StageTrigger,
    WorkflowDef,
)
from storage.queries import enrollments as enrollment_rows
from storage.queries import segments as segment_rows
from storage.queries import steps as step_rows
from storage.queries import workflows as q
from storage.workflow_models import Workflow, WorkflowVersion

Action = Literal["create", "change", "unchanged", "revive"]


class WorkflowError(ValueError):
    """A workflow operation that cannot be done; the message says why, in one line."""


@dataclass(frozen=True)
class Saved:
    name: str
    action: Action
    version: int
    status: str  # after saving
    was: str | None  # status before, for an existing workflow
    summary: str  # what changed, for a new version
    enrolled_existing: int = 0  # enrolled at a first enable with `enroll_existing: true`


def document_of(definition: WorkflowDef) -> dict[str, Any]:
    """The versioned content of a definition: every key as the format writes it, no status."""
    return definition.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"status"})


def trigger_index(session: Session, definition: WorkflowDef) -> tuple[str, str]:
    """(signal kind, signal key) the workflow listens to: what the trigger index holds."""
    trigger = definition.trigger
    if isinstance(trigger, SegmentTrigger):
        segment = segment_rows.by_name(session, name=trigger.segment)
        if segment is None:
            raise WorkflowError(f"trigger.segment: no segment named {trigger.segment!r}")
        if segment.object_type != definition.object:
            raise WorkflowError(
                f"trigger.segment: {segment.name!r} holds {segment.object_type}s, "
                f"this workflow follows {definition.object}s"
            )
        return f"segment_{trigger.when}", str(segment.id)
    if isinstance(trigger, StageTrigger):
        stages = lifecycle.stages(session)
        stage = stages.canonical(trigger.stage)
        if stage is None:
            raise WorkflowError(
                f"trigger.stage: {trigger.stage!r} is not a stage ({stages.allowed()})"
            )
        return f"stage_{trigger.when}", stage
    if isinstance(trigger, HealthTrigger):
        return "health", ANY_KEY if trigger.health == "change" else trigger.health
    assert isinstance(trigger, EventTrigger)
    return "event", trigger.event


def save(session: Session, *, definition: WorkflowDef, by: str, now: datetime) -> Saved:
    """Create or update the workflow of this name (a deleted one is revived, keeping its
    enrollments), as a new version when the document changed, then move it to the status
    the definition asks for (a definition without `status` leaves an existing one's)."""
    document = document_of(definition)
    kind, key = trigger_index(session, definition)
    workflow = q.by_name(session, name=definition.name, deleted=True)
    if workflow is None:
        workflow = Workflow(
            name=definition.name,
            name_key=q.name_key(definition.name),
            object_type=definition.object,
            status="draft",
            version=0,
            trigger_kind=kind,
            trigger_key=key,
            created_at=now,
            updated_at=now,
        )
        session.add(workflow)
        session.flush()
        _add_version(session, workflow, document, by=by, summary="created", now=now)
        enrolled = _set_status(session, workflow, definition.status, now)
        return Saved(
            workflow.name, "create", workflow.version, workflow.status, None, "created", enrolled
        )
    if workflow.object_type != definition.object:
        raise WorkflowError(
            f"object: {workflow.name!r} follows {workflow.object_type}s; a workflow's object "
            "cannot change (create a new workflow)"
        )
    was = workflow.status
    action: Action = "unchanged"
    summary = ""
    if workflow.deleted_at is not None:
        workflow.deleted_at = None
        workflow.status = "draft" if workflow.live_since is None else "disabled"
        was, action = workflow.status, "revive"
    current = q.version(session, workflow_id=workflow.id, number=workflow.version)
    if current is None or current.document != document:
        summary = changes(current.document if current else {}, document)
        _add_version(session, workflow, document, by=by, summary=summary, now=now)
        action = "revive" if action == "revive" else "change"
    workflow.name = definition.name  # the file's spelling
    workflow.trigger_kind, workflow.trigger_key = kind, key
    enrolled = 0
    if "status" in definition.model_fields_set:  # a file without `status` keeps the current one
        enrolled = _set_status(session, workflow, definition.status, now)
    if action == "unchanged" and workflow.status != was:
        workflow.updated_at = now
    return Saved(workflow.name, action, workflow.version, workflow.status, was, summary, enrolled)


def _add_version(
    session: Session,
    workflow: Workflow,
    document: dict[str, Any],
    *,
    by: str,
    summary: str,
    now: datetime,
) -> WorkflowVersion:
    workflow.version += 1
    workflow.updated_at = now
    version = WorkflowVersion(
        workflow_id=workflow.id,
        number=workflow.version,
        document=document,
        created_at=now,
        created_by=by,
        summary=summary,
    )
    session.add(version)
    return version


def _set_status(session: Session, workflow: Workflow, status: str, now: datetime) -> int:
    """draft -> live -> disabled -> live; a workflow that went live never returns to draft.
    Going live again releases the steps held while it was disabled (the runner skips those
    overdue by more than the resume window); going live the first time with
    `enroll_existing: true` enrolls who matches now. Returns how many that enrolled."""
    if status == workflow.status:
        return 0
    if status == "draft":
        raise WorkflowError(
            f"status: {workflow.name!r} is {workflow.status}; a workflow that went live does "
            "not return to draft (use disabled)"
        )
    first = workflow.live_since is None
    if status == "live":
        workflow.live_since = now  # only signals from now on enroll
        workflow.disabled_at = None
        released = step_rows.release_held(session, workflow_id=workflow.id)
        enrollment_rows.log(
            session,
            rows=[
                {
                    "enrollment_id": r.enrollment_id,
                    "at": now,
                    "kind": "resumed",
                    "step_index": r.step_index,
                    "message": f"step {r.step_index + 1} released: the workflow is live again",
                }
                for r in released
            ],
        )
    else:
        workflow.disabled_at = now
    workflow.status = status
    if status == "live" and first:
        current = q.version(session, workflow_id=workflow.id, number=workflow.version)
        if current is not None and current.document.get("enroll_existing"):
            session.flush()
            return control.enroll_existing(session, workflow=workflow, now=now)
    return 0


def changes(old: dict[str, Any], new: dict[str, Any]) -> str:
    """What differs between two documents, as a short list of keys (`steps[1]`, `trigger`)."""
    found = []
    for key in dict.fromkeys([*old, *new]):
        if old.get(key) == new.get(key):
            continue
        if key == "steps":
            before, after = old.get(key) or [], new.get(key) or []
            for i in range(max(len(before), len(after))):
                if i >= len(before):
                    found.append(f"steps[{i}] added")
                elif i >= len(after):
                    found.append(f"steps[{i}] removed")
                elif before[i] != after[i]:
                    found.append(f"steps[{i}]")
        else:
            found.append(key)
    return ", ".join(found) or "unchanged"


def get(session: Session, *, name: str) -> Workflow:
    """The workflow of this name, or WorkflowError naming the known ones."""
    workflow = q.by_name(session, name=name)
    if workflow is None:
        known = ", ".join(w.name for w in q.all_workflows(session)[:10]) or "none yet"
        raise WorkflowError(f"no workflow named {name!r} (known: {known})")
    return workflow


@dataclass(frozen=True)
class StatusChange:
    workflow: Workflow
    enrolled_existing: int  # records enrolled at a first enable with `enroll_existing: true`


def set_status(session: Session, *, name: str, status: str, now: datetime) -> StatusChange:
    """Enable (live) or disable a workflow by name."""
    workflow = get(session, name=name)
    enrolled = _set_status(session, workflow, status, now)
    workflow.updated_at = now
    return StatusChange(workflow, enrolled)


def rename(session: Session, *, name: str, new_name: str, now: datetime) -> Workflow:
    """Rename, keeping identity, versions and enrollments; a name in use is refused."""
    workflow = get(session, name=name)
    new_name = new_name.strip()
    if not new_name or len(new_name) > 200:
        raise WorkflowError("name: a workflow name has 1 to 200 characters")
    other = q.by_name(session, name=new_name, deleted=True)
    if other is not None and other.id != workflow.id:
        gone = " (a deleted workflow keeps its name)" if other.deleted_at else ""
        raise WorkflowError(f"name: {new_name!r} is taken{gone}")
    workflow.name, workflow.name_key, workflow.updated_at = new_name, q.name_key(new_name), now
    return workflow


def delete(session: Session, *, name: str, now: datetime) -> Workflow:
    """Soft delete: no new enrollments, hidden from lists; the row and its history stay."""
    workflow = get(session, name=name)
    if workflow.status == "live":
        _set_status(session, workflow, "disabled", now)
    workflow.deleted_at = workflow.updated_at = now
    return workflow


def rollback(
    session: Session, *, name: str, number: int, by: str, now: datetime
) -> WorkflowVersion:
    """Make an old version's document current again, as a new version."""
    workflow = get(session, name=name)
    old = q.version(session, workflow_id=workflow.id, number=number)
    if old is None:
        raise WorkflowError(f"{workflow.name!r} has no version {number} (1 to {workflow.version})")
    definition = WorkflowDef.model_validate({**old.document, "status": workflow.status})
    workflow.trigger_kind, workflow.trigger_key = trigger_index(session, definition)
    return _add_version(
        session, workflow, old.document, by=by, summary=f"rollback to version {number}", now=now
    )


def history(session: Session, *, name: str) -> list[WorkflowVersion]:
    return q.versions(session, workflow_id=get(session, name=name).id)


def export(session: Session, *, names: list[str] | None = None) -> list[dict[str, Any]]:
    """Current documents in the definition format, each with its status, by name."""
    chosen = [get(session, name=n) for n in names] if names else q.all_workflows(session)
    documents = q.documents(session, workflows=chosen)
    return [{**documents[w.id], "name": w.name, "status": w.status} for w in chosen]
