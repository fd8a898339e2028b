"""Apply a workflow file to the workspace: stages, health thresholds, segments by name.

`plan` says what applying would change (segments created with their size, rule changes
with how many records will enter and leave) without writing; `apply` does it in the
caller's transaction. Nothing is ever deleted by a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine import lifecycle, segments
from engine.definitions import DefinitionError, WorkspaceDef
from engine.rules import parse
from engine.rules.lifecycle import Lifecycle, LifecycleError, resolve
from storage.models import Segment
from storage.queries import configuration
from storage.queries import segments as segment_rows

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


@dataclass
class Plan:
    stages: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    health: tuple[lifecycle.Health, lifecycle.Health] | None = None
    segments: list[SegmentPlan] = field(default_factory=list)

    @property
    def changes(self) -> bool:
        return bool(
            self.stages or self.health or any(s.action != "unchanged" for s in self.segments)
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
        return out


def plan(session: Session, doc: WorkspaceDef, *, now: datetime) -> Plan:
    """What applying `doc` would change, with member counts; writes nothing."""
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
            probe = Segment(object_type=definition.object, rule=definition.rule)
            table = segments.table_for(definition.object)
            condition = segments.condition(probe, session=session, now=now)
            size = session.scalar(select(func.count()).select_from(table).where(condition)) or 0
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
    if problems:
        raise DefinitionError(problems)
    return result


def apply(session: Session, doc: WorkspaceDef, *, now: datetime) -> Plan:
    """Apply `doc` in the caller's transaction; returns what was done (actual counts)."""
    intended = plan(session, doc, now=now)
    done = Plan(stages=intended.stages, health=intended.health)
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
    return done
