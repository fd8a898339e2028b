"""Control over one record and over a whole workflow: who matches now (`audience`), enrolling
the existing audience at enable, enrolling or exiting one record by hand, exiting everyone,
the dry run of `workflows test`, and the timelines `logs` prints."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select, true
from sqlalchemy.orm import Session

from engine import actions, enrollment, lifecycle, views
from engine.compiled import CompiledWorkflow, compile_version, condition
from engine.rules.ast import Rule
from engine.rules.lifecycle import Lifecycle
from engine.rules.to_sql import to_sql
from engine.segments import table_for
from engine.settings import Settings
from engine.workflow_defs import (
    EventTrigger,
    HealthTrigger,
    SegmentTrigger,
    StageTrigger,
    WorkflowDef,
)
from storage.models import Account, Contact
from storage.queries import enrollments as q
from storage.queries import workflows as workflow_rows
from storage.queries.ingest import EVENTS
from storage.queries.segments import MEMBERS
from storage.queries.segments import by_name as segment_by_name
from storage.workflow_models import Enrollment, EnrollmentLog, Workflow, WorkflowVersion

EVENT_WINDOW = timedelta(days=30)


class ControlError(ValueError):
    """A control command that cannot be done; the message says why, in one line."""


def current(session: Session, workflow: Workflow, ruling: Lifecycle) -> CompiledWorkflow:
    """The workflow's current version, compiled."""
    version = workflow_rows.version(session, workflow_id=workflow.id, number=workflow.version)
    assert version is not None
    return compile_version(version.id, version.document, ruling)


def workflow_named(session: Session, name: str) -> Workflow:
    found = workflow_rows.by_name(session, name=name)
    if found is None:
        raise ControlError(f'no workflow is named "{name}" (see `workflowbot workflows list`)')
    return found


def record_id(session: Session, object_type: str, external_id: str) -> int:
    model = Account if object_type == "account" else Contact
    found = session.scalar(select(model.id).where(model.external_id == external_id))
    if found is None:
        raise ControlError(f'no {object_type} has the id "{external_id}"')
    return int(found)


# -- audience ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Audience:
    count: int
    what: str  # who was counted, in words
    estimate: bool = False


def _trigger_condition(
    session: Session, definition: WorkflowDef, ruling: Lifecycle, now: datetime
) -> tuple[ColumnElement[bool], str, bool]:
    table = table_for(definition.object)
    trigger = definition.trigger
    plural = f"{definition.object}s"
    if isinstance(trigger, SegmentTrigger):
        segment = segment_by_name(session, name=trigger.segment)
        if segment is None:
            raise ControlError(f'trigger.segment: no segment is named "{trigger.segment}"')
        members = select(MEMBERS.c.record_id).where(MEMBERS.c.segment_id == segment.id)
        return table.c.id.in_(members), f'members of segment "{segment.name}"', False
    if isinstance(trigger, StageTrigger):
        stage = lifecycle.Stages(ruling.stages).canonical(trigger.stage) or trigger.stage
        condition = func.lower(table.c.stage) == stage.lower()
        return condition, f"{plural} at stage {stage}", False
    if isinstance(trigger, HealthTrigger):
        score = table.c.health_score
        bounds = {
            "good": score >= ruling.good,
            "neutral": and_(score >= ruling.bad, score < ruling.good),
            "bad": score < ruling.bad,
        }
        if trigger.to is not None:
            return bounds[trigger.to], f"{plural} in {trigger.to} health", False
        return score.is_not(None), f"{plural} with a health score", False
    assert isinstance(trigger, EventTrigger)
    column = EVENTS.c.contact_id if definition.object == "contact" else EVENTS.c.account_id
    did = select(column).where(
        EVENTS.c.name == trigger.event, EVENTS.c.timestamp > now - EVENT_WINDOW
    )
    what = f"{plural} that did {trigger.event} in the last 30 days"
    if trigger.where is not None:
        what += " (the event's `where` not applied)"
    return table.c.id.in_(did), what, True


def _audience_query(
    session: Session, definition: WorkflowDef, ruling: Lifecycle, now: datetime
) -> tuple[Any, str, bool]:
    table = table_for(definition.object)
    condition, what, estimate = _trigger_condition(session, definition, ruling, now)
    only_if: ColumnElement[bool] = true()
    compiled_only_if = enrollment_condition(definition, ruling)
    dialect = session.get_bind().dialect.name
    if compiled_only_if is not None:
        only_if = to_sql(compiled_only_if, table=table, now=now, dialect=dialect)
        what += f" where only_if `{definition.only_if}` holds"
    return select(table.c.id).where(condition, only_if), what, estimate


def enrollment_condition(definition: WorkflowDef, ruling: Lifecycle) -> Rule | None:
    """The workflow's only_if, resolved against the workspace's stages and thresholds."""
    found = condition(definition.only_if, ruling)
    return found.rule if found is not None else None


def audience(session: Session, *, definition: WorkflowDef, now: datetime) -> Audience:
    """How many records match the workflow's trigger (and only_if) now."""
    ruling = lifecycle.current(session)
    query, what, estimate = _audience_query(session, definition, ruling, now)
    count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    return Audience(int(count), what, estimate)


def enroll_existing(
    session: Session, *, workflow: Workflow, now: datetime, batch: int = 1000
) -> int:
    """`enroll_existing: true` at the first enable: enroll who matches now (steps are
    scheduled for the scheduler to dispatch). Returns how many enrolled."""
    ruling = lifecycle.current(session)
    compiled = current(session, workflow, ruling)
    query, what, _ = _audience_query(session, compiled.definition, ruling, now)
    ids = list(session.scalars(query))
    total = 0
    for start in range(0, len(ids), batch):
        candidates = [
            enrollment.Candidate(
                workflow.object_type,
                record,
                {"kind": "existing", "key": "", "detail": {}},
                f"in the audience when the workflow went live ({what})",
            )
            for record in ids[start : start + batch]
        ]
        made = enrollment.enroll(
            session,
            workflow=workflow,
            compiled=compiled,
            candidates=candidates,
            via="existing",
            now=now,
            queue=False,
        )
        total += len(made.enrolled)
    return total


# -- one record ----------------------------------------------------------------------------------
def enroll_by_hand(
    session: Session, *, name: str, object_type: str, external_id: str, by: str, now: datetime
) -> int:
    """Enroll one record now (its first step scheduled for the scheduler); `only_if` is not
    asked (a person decided), `exit_if`, `once` and one-active are. Returns the enrollment id
    or raises ControlError saying why not."""
    workflow = workflow_named(session, name)
    if workflow.status != "live":
        raise ControlError(f'"{workflow.name}" is {workflow.status}; enable it first')
    if object_type != workflow.object_type:
        raise ControlError(f'"{workflow.name}" follows {workflow.object_type}s, not {object_type}s')
    record = record_id(session, object_type, external_id)
    compiled = current(session, workflow, lifecycle.current(session))
    made = enrollment.enroll(
        session,
        workflow=workflow,
        compiled=compiled,
        candidates=[
            enrollment.Candidate(
                object_type,
                record,
                {"kind": "manual", "key": by, "detail": {"by": by}},
                f"by hand, by {by}",
            )
        ],
        via="manual",
        now=now,
        queue=False,
        check_only_if=False,
    )
    if not made.enrolled:
        why = made.refused.get((object_type, record), "already enrolled")
        raise ControlError(f'{object_type} "{external_id}" was not enrolled: {why}')
    return made.enrolled[0]


def _active_of_record(
    session: Session, name: str | None, object_type: str, external_id: str
) -> list[Enrollment]:
    """The record's active enrollments, in the workflow named (or in all)."""
    workflow = workflow_named(session, name) if name is not None else None
    return list(
        q.active_of(
            session,
            workflow_id=workflow.id if workflow is not None else None,
            object_type=object_type,
            object_id=record_id(session, object_type, external_id),
        )
    )


def exit_record(
    session: Session,
    *,
    name: str | None,
    object_type: str,
    external_id: str,
    by: str,
    now: datetime,
) -> list[str]:
    """End the record's active enrollment in one workflow (or in all); returns the names of
    the workflows it left."""
    active = _active_of_record(session, name, object_type, external_id)
    ended = enrollment.exit_enrollments(
        session, exits=[(e.id, f"exited by hand, by {by}") for e in active], now=now
    )
    names = {w.id: w.name for w in workflow_rows.all_workflows(session)}
    return sorted(names.get(e.workflow_id, "?") for e in active if e.id in ended)


def retry_held(
    session: Session,
    *,
    name: str | None,
    object_type: str,
    external_id: str,
    by: str,
    now: datetime,
) -> int:
    """Run again the record's steps that need attention (a value it lacked, a sender's Gmail
    connection, a provider that refused), in one workflow or all; returns how many."""
    active = _active_of_record(session, name, object_type, external_id)
    return enrollment.retry_attention(
        session, enrollment_ids=[e.id for e in active], now=now, why=f"tried again by {by}"
    )


def exit_all(session: Session, *, workflow: Workflow, by: str, now: datetime) -> int:
    """End every active enrollment of the workflow (`disable --exit-all`)."""
    ids = list(
        session.scalars(
            select(Enrollment.id).where(
                Enrollment.workflow_id == workflow.id, Enrollment.status == "active"
            )
        )
    )
    reason = f"the workflow was disabled with --exit-all by {by}"
    return len(enrollment.exit_enrollments(session, exits=[(i, reason) for i in ids], now=now))


# -- the dry run ---------------------------------------------------------------------------------
def dry_run(
    session: Session,
    *,
    name: str,
    object_type: str,
    external_id: str,
    settings: Settings,
    now: datetime,
) -> list[str]:
    """What the workflow would do for this record now, without doing anything: the trigger
    and conditions, and each step's only_if and preview (rendered)."""
    workflow = workflow_named(session, name)
    if object_type != workflow.object_type:
        raise ControlError(f'"{workflow.name}" follows {workflow.object_type}s, not {object_type}s')
    record = record_id(session, object_type, external_id)
    ruling = lifecycle.current(session)
    compiled = current(session, workflow, ruling)
    definition = compiled.definition
    view = views.rule_views(
        session,
        object_type=object_type,
        ids=[record],
        aggregates=compiled.aggregates,
        with_account=compiled.uses_account,
        now=now,
    )[record]
    query, what, estimate = _audience_query(
        session, definition.model_copy(update={"only_if": None}), ruling, now
    )
    table = table_for(object_type)
    matches = session.scalar(
        select(func.count()).where(table.c.id == record, table.c.id.in_(query))
    )
    lines = [
        f'workflow "{workflow.name}" (version {workflow.version}, {workflow.status}) for '
        f'{object_type} "{external_id}" — nothing is sent',
        f"trigger: {'matches' if matches else 'does not match'} now: {what}"
        + (" (an estimate)" if estimate else ""),
    ]
    for label, rule in (("only_if", compiled.only_if), ("exit_if", compiled.exit_if)):
        if rule is not None:
            lines.append(f"{label} `{rule.text}`: {'true' if rule.holds(view, now) else 'false'}")
    active = q.active_of(
        session, workflow_id=workflow.id, object_type=object_type, object_id=record
    )
    if active:
        lines.append(f"already active (enrollment #{active[0].id}): a signal would not enroll it")
    data = views.template_data(
        session,
        object_type=object_type,
        record_id=record,
        health=lifecycle.Health(ruling.good, ruling.bad),
    )
    assert data is not None
    data["workflow"] = {
        "name": workflow.name,
        "description": definition.description,
        "object": workflow.object_type,
        "status": workflow.status,
    }
    wait = timedelta(0)
    for index, step in enumerate(definition.steps):
        wait += timedelta(seconds=step.delay_seconds)
        when = "at once" if not wait else f"after {_duration(wait)}"
        condition = compiled.step_only_if[index]
        head = f"step {index + 1} ({step.action}, {when})"
        if condition is not None and not condition.holds(view, now):
            lines.append(f"{head}: would be skipped now: only_if `{condition.text}` is false")
            continue
        preview = actions.for_step(step).preview(step, data, settings)
        lines.append(f"{head}: would run" + (f" but: {preview.problem}" if preview.problem else ""))
        lines += [f"    {line}" for line in preview.lines]
    return lines


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# -- timelines -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Timeline:
    enrollment: Enrollment
    record: str  # external id
    version: int
    lines: Sequence[EnrollmentLog]

    def text(self) -> list[str]:
        """The timeline as `workflowbot logs` and `/workflow logs` show it: the enrollment,
        then one line per entry."""
        e = self.enrollment
        ended = f", {e.end_reason}" if e.end_reason and e.status != "completed" else ""
        head = f"#{e.id} {e.object_type} {self.record} · {e.status}{ended} · version {self.version}"
        return [head, *(f"  {line.at:%Y-%m-%d %H:%M:%S}  {line.message}" for line in self.lines)]


def timelines(
    session: Session,
    *,
    name: str,
    object_type: str | None = None,
    external_id: str | None = None,
    limit: int = 20,
    offset: int = 0,
) -> list[Timeline]:
    """The newest enrollments of a workflow (of one record), each with its timeline, skipping
    the `offset` newest."""
    workflow = workflow_named(session, name)
    record = None
    if object_type is not None and external_id is not None:
        record = record_id(session, object_type, external_id)
    found = q.of_workflow(
        session,
        workflow_id=workflow.id,
        object_type=object_type,
        object_id=record,
        limit=limit,
        offset=offset,
    )
    lines = q.timeline(session, enrollment_ids=[e.id for e in found])
    numbers = dict(
        session.execute(
            select(WorkflowVersion.id, WorkflowVersion.number).where(
                WorkflowVersion.id.in_({e.version_id for e in found})
            )
        ).all()
    )
    externals: dict[tuple[str, int], str] = {}
    for kind, model in (("account", Account), ("contact", Contact)):
        ids = [e.object_id for e in found if e.object_type == kind]
        if ids:
            rows = session.execute(select(model.id, model.external_id).where(model.id.in_(ids)))
            externals |= {(kind, rid): ext for rid, ext in rows}
    return [
        Timeline(
            e,
            externals.get((e.object_type, e.object_id), "?"),
            numbers.get(e.version_id, 0),
            [line for line in lines if line.enrollment_id == e.id],
        )
        for e in found
    ]
