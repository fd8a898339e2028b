"""Apply a workflow file to the workspace: stages, health thresholds, segments and workflows
by name.

`plan` says what applying would change (segments created with their size, rule changes
with how many records will enter and leave) without writing; `apply` does it in the
caller's transaction. Nothing is ever deleted by a file.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from sqlalchemy.orm import Session

from engine import control, enrollment, http, lifecycle, segments, webhook_secrets, workflows
from engine.definitions import DefinitionError, WorkspaceDef, check_references, parse_document
from engine.rules import parse
from engine.rules.lifecycle import Lifecycle, LifecycleError, resolve
from engine.secrets import Vault
from engine.settings import Settings
from storage.queries import configuration
from storage.queries import segments as segment_rows
from storage.queries import workflows as workflow_rows
from storage.workflow_models import Workflow

Action = Literal["create", "change", "rename", "unchanged"]


@dataclass(frozen=True)
class SegmentPlan:
    name: str
    object_type: str
    action: Action
    members: int = 0  # create: its size
    entering: int = 0  # change: records that will enter / leave (signals)
    leaving: int = 0

    def line(self) -> str:
        what = f'segment "{self.name}" ({self.object_type})'
        if self.action == "create":
            return f"{what}: new, {self.members:,} members (a first computation fires nothing)"
        if self.action == "change":
            return (
                f"{what}: rule changes, {self.entering:,} will enter and {self.leaving:,} "
                "will leave (signals)"
            )
        if self.action == "rename":
            return f"{what}: renamed"
        return f"{what}: unchanged"


@dataclass(frozen=True)
class WorkflowPlan:
    name: str
    action: Literal["create", "change", "revive", "unchanged"]
    status: str  # after applying
    was: str | None = None  # before, for an existing workflow
    active: int = 0  # active enrollments that stay on their version
    summary: str = ""
    audience: control.Audience | None = None  # who matches the (new) trigger now, if live
    existing: control.Audience | None = None  # who `enroll_existing` enrolls at a first enable
    enrolled_existing: int = 0  # after applying: how many it did
    new_secret: str | None = None  # after applying: a webhook signing secret made now (shown once)

    @property
    def changes(self) -> bool:
        return self.action != "unchanged" or self.status != self.was

    def line(self) -> str:
        what = f'workflow "{self.name}"'
        if self.action == "create":
            return f"{what}: new, {self.status}" + self._existing()
        parts = []
        if self.action == "revive":
            parts.append("restored (it had been deleted; its enrollments count)")
        if self.action in ("change", "revive") and self.summary:
            parts.append(f"new version ({self.summary})")
            if self.active:
                parts.append(f"{self.active:,} active enrollments finish on their version")
            if self.audience is not None:
                about = " (an estimate)" if self.audience.estimate else ""
                parts.append(f"{self.audience.count:,} {self.audience.what} now{about}")
        if self.status != self.was:
            parts.append(f"{self.was} -> {self.status}")
        return f"{what}: {'; '.join(parts) or 'unchanged'}" + self._existing()

    def _existing(self) -> str:
        """What `enroll_existing` will enroll at a first enable (said before applying)."""
        if self.existing is None:
            return ""
        return f"; enroll_existing: {self.existing.count:,} {self.existing.what} enroll now"


@dataclass
class Plan:
    stages: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    health: tuple[lifecycle.Health, lifecycle.Health] | None = None
    segments: list[SegmentPlan] = field(default_factory=list)
    workflows: list[WorkflowPlan] = field(default_factory=list)

    @property
    def changes(self) -> bool:
        return bool(
            self.stages
            or self.health
            or any(s.action != "unchanged" for s in self.segments)
            or any(w.changes for w in self.workflows)
        )

    def lines(self) -> list[str]:
        out = []
        if self.stages:
            old, new = self.stages
            out.append(
                f"stages: {', '.join(new)} (were: {', '.join(old) or 'none'}; segments on "
                "stage are recomputed without signals)"
            )
        if self.health:
            old_h, new_h = self.health
            out.append(
                f"health: good >= {new_h.good:g}, bad < {new_h.bad:g} (were {old_h.good:g} / "
                f"{old_h.bad:g}; buckets and segments on health move without signals)"
            )
        out += [s.line() for s in self.segments]
        out += [w.line() for w in self.workflows]
        return out


def plan(
    session: Session,
    doc: WorkspaceDef,
    *,
    now: datetime,
    allowed_hosts: Collection[str] = (),
    settings: Settings | None = None,
    resolver: http.Resolver | None = None,
) -> Plan:
    """What applying `doc` would change, with member counts; writes nothing. Workflows are
    checked against the workspace (segments, stages, webhook hosts, template names)."""
    result = Plan()
    now_set = lifecycle.current(session)
    if doc.stages is not None:
        old = now_set.stages
        if tuple(doc.stages) != old:
            result.stages = (old, tuple(doc.stages))
    if doc.health is not None:
        old_health = lifecycle.Health(good=now_set.good, bad=now_set.bad)
        new_health = lifecycle.Health(good=doc.health.good, bad=doc.health.bad)
        if new_health != old_health:
            result.health = (old_health, new_health)
    problems = []
    after = Lifecycle(
        tuple(doc.stages) if doc.stages is not None else now_set.stages,
        doc.health.good if doc.health else now_set.good,
        doc.health.bad if doc.health else now_set.bad,
    )
    for i, definition in enumerate(doc.segments):
        try:
            resolve(parse(definition.rule), after, strict=True)
        except LifecycleError as exc:
            problems.append(f"segments[{i}].rule: {exc}")
            continue
        existing = segment_rows.by_name(session, name=definition.name)
        if existing is None:
            size = segments.count_matching(
                session, object_type=definition.object, rule=definition.rule, now=now
            )
            result.segments.append(
                SegmentPlan(definition.name, definition.object, "create", members=size)
            )
        elif existing.object_type != definition.object:
            problems.append(
                f"segments[{i}].object: {existing.name!r} is an {existing.object_type} segment "
                f"and cannot become a {definition.object} segment (create a new segment)"
            )
        elif str(parse(existing.rule)) != str(parse(definition.rule)):
            entering, leaving = segments.preview(
                session, segment=existing, rule=definition.rule, now=now
            )
            result.segments.append(
                SegmentPlan(definition.name, definition.object, "change", 0, entering, leaving)
            )
        else:
            action: Action = "rename" if existing.name != definition.name else "unchanged"
            result.segments.append(SegmentPlan(definition.name, definition.object, action))
    stored = {s.name_key: s.object_type for s in segment_rows.all_segments(session)}
    problems += check_references(
        doc,
        segments=stored,
        stages=now_set.stages,
        allowed_hosts=allowed_hosts,
        resolver=resolver or http.SystemResolver(),
        settings=settings,
    )
    if problems:
        raise DefinitionError(problems)
    result.workflows = _workflow_plans(session, doc, now)
    return result


def current_problems(
    session: Session, *, workflow: Workflow, now: datetime, settings: Settings
) -> list[str]:
    """Every problem of the workflow's current version in today's workspace (the format, and
    the segments, stages and webhook hosts it names, which may have changed since it was
    saved), as `plan` names them; none when it may go live. Nothing is written."""
    current = workflow_rows.version(session, workflow_id=workflow.id, number=workflow.version)
    assert current is not None
    data = {"version": 1, "workflows": [{**current.document, "name": workflow.name}]}
    try:
        doc = parse_document(data)
        with session.begin_nested() as checking:
            plan(
                session,
                doc,
                now=now,
                allowed_hosts=settings.webhook_allowed_hosts,
                settings=settings,
            )
            checking.rollback()
    except DefinitionError as exc:
        return list(exc.problems)
    return []


def _workflow_plans(session: Session, doc: WorkspaceDef, now: datetime) -> list[WorkflowPlan]:
    """What saving each workflow would do (no trigger lookups: segments may be new)."""
    plans = []
    existing = {w.name_key: w for w in workflow_rows.all_workflows(session)}
    counts = workflow_rows.counts(session, workflow_ids=[w.id for w in existing.values()])
    for definition in doc.workflows:
        found = workflow_rows.by_name(session, name=definition.name, deleted=True)
        if found is None:
            plans.append(
                WorkflowPlan(
                    definition.name,
                    "create",
                    definition.status,
                    existing=_existing(session, definition, None, definition.status, now),
                )
            )
            continue
        keep = "status" not in definition.model_fields_set
        current = workflow_rows.version(session, workflow_id=found.id, number=found.version)
        document = workflows.document_of(definition)
        changed = current is None or current.document != document
        summary = workflows.changes(current.document if current else {}, document)
        action: Literal["change", "revive", "unchanged"] = (
            "revive" if found.deleted_at is not None else "change" if changed else "unchanged"
        )
        was = found.status if found.deleted_at is None else "deleted"
        revived = "draft" if found.live_since is None else "disabled"
        status = (found.status if found.deleted_at is None else revived) if keep else None
        if status is None:
            status = definition.status
            if status == "draft" and found.live_since is not None:
                raise DefinitionError(
                    [
                        f"workflows[{len(plans)}].status: {found.name!r} went live; a "
                        "workflow does not return to draft (use disabled)"
                    ]
                )
        active = counts.get(found.id, {}).get("active", 0)
        reach = None
        if changed and status == "live":
            try:
                reach = control.audience(session, definition=definition, now=now)
            except control.ControlError:
                reach = None  # a segment this file creates: not counted before it exists
        plans.append(
            WorkflowPlan(
                definition.name,
                action,
                status,
                was,
                active,
                summary if changed else "",
                reach,
                _existing(session, definition, found, status, now),
            )
        )
    return plans


def _existing(
    session: Session,
    definition: workflows.WorkflowDef,
    found: Workflow | None,
    status: str,
    now: datetime,
) -> control.Audience | None:
    """Who `enroll_existing` would enroll: only when this apply makes it live the first time
    (None too when its segment is created by the same file: counted after applying)."""
    first = found is None or found.live_since is None
    if not (definition.enroll_existing and status == "live" and first):
        return None
    try:
        return control.audience(session, definition=definition, now=now)
    except control.ControlError:
        return None


def _webhook_secret(
    session: Session, workflow: workflows.WorkflowDef, settings: Settings | None, now: datetime
) -> str | None:
    """A signing secret for a workflow with a webhook step that has none yet (SECRET_KEY
    encrypts it; without it, WEBHOOK_SECRET or nothing signs)."""
    if settings is None or not settings.secret_key:
        return None
    if not any(step.action == "webhook" for step in workflow.steps):
        return None
    row = workflow_rows.by_name(session, name=workflow.name)
    assert row is not None
    return webhook_secrets.ensure(
        session, workflow_id=row.id, vault=Vault(settings.secret_key), now=now
    )


def apply(
    session: Session,
    doc: WorkspaceDef,
    *,
    now: datetime,
    by: str = "cli",
    allowed_hosts: Collection[str] = (),
    settings: Settings | None = None,
    resolver: http.Resolver | None = None,
) -> Plan:
    """Apply `doc` in the caller's transaction; returns what was done (actual counts)."""
    intended = plan(
        session, doc, now=now, allowed_hosts=allowed_hosts, resolver=resolver, settings=settings
    )
    done = Plan(stages=intended.stages, health=intended.health, workflows=intended.workflows)
    if intended.stages:
        configuration.put(
            session, key=lifecycle.STAGES_KEY, value=list(intended.stages[1]), now=now
        )
    if intended.health:
        h = intended.health[1]
        configuration.put(
            session, key=lifecycle.HEALTH_KEY, value={"good": h.good, "bad": h.bad}, now=now
        )
    if intended.stages or intended.health:
        # Stages or thresholds mean something new: re-bucket silently, as on a first computation.
        session.flush()
        rewritten = {
            segment_rows.name_key(step.name)
            for step in intended.segments
            if step.action in ("create", "change")
        }
        for segment in segment_rows.all_segments(session):
            if segment.name_key not in rewritten and segments.uses_lifecycle(segment):
                segments.refresh(session, segment=segment, now=now, signal=False)
    for definition, step in zip(doc.segments, intended.segments, strict=True):
        existing = segment_rows.by_name(session, name=definition.name)
        if step.action == "create":
            _, size = segments.create(
                session,
                name=definition.name,
                object_type=definition.object,
                rule=definition.rule,
                now=now,
            )
            done.segments.append(
                SegmentPlan(definition.name, definition.object, "create", members=size)
            )
        elif step.action == "change" and existing is not None:
            moved = segments.change_rule(session, segment=existing, rule=definition.rule, now=now)
            # Who entered or left is a signal like any other (its steps wait for the scheduler).
            enrollment.on_signals(
                session,
                signals=moved.signals,
                lifecycle=lifecycle.current(session),
                now=now,
                queue=False,
            )
            done.segments.append(
                SegmentPlan(
                    definition.name, definition.object, "change", 0, moved.entered, moved.left
                )
            )
        else:
            if step.action == "rename" and existing is not None:
                existing.name = definition.name
                existing.updated_at = now
            done.segments.append(step)
    session.flush()
    applied = []
    for workflow, intent in zip(doc.workflows, intended.workflows, strict=True):
        try:
            saved = workflows.save(session, definition=workflow, by=by, now=now)
        except workflows.WorkflowError as exc:
            raise DefinitionError([str(exc)]) from None
        applied.append(
            replace(
                intent,
                enrolled_existing=saved.enrolled_existing,
                new_secret=_webhook_secret(session, workflow, settings, now),
            )
        )
    done.workflows = applied
    return done
