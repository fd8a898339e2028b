"""A stored workflow version made ready to run: its definition parsed once, its rules
compiled against the workspace's lifecycle (stages, health thresholds).

Versions never change once stored, so compilation is cached by (version id, lifecycle).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.rules import parse
from engine.rules.analysis import dependencies
from engine.rules.ast import Aggregate, Rule
from engine.rules.lifecycle import Lifecycle, resolve
from engine.rules.to_python import EventView, Predicate, to_python
from engine.workflow_defs import EventTrigger, HealthTrigger, WorkflowDef


@dataclass(frozen=True)
class Condition:
    """A rule as written, compiled for one record."""

    text: str
    rule: Rule
    predicate: Predicate

    def holds(self, view: Any, now: datetime) -> bool:
        return bool(self.predicate(view, now))


def condition(text: str | None, lifecycle: Lifecycle) -> Condition | None:
    if text is None:
        return None
    rule = resolve(parse(text), lifecycle)
    return Condition(text, rule, to_python(rule))


@dataclass(frozen=True)
class CompiledWorkflow:
    version_id: int
    definition: WorkflowDef
    only_if: Condition | None
    exit_if: Condition | None
    step_only_if: tuple[Condition | None, ...]
    event_where: Predicate | None

    @property
    def aggregates(self) -> tuple[Aggregate, ...]:
        """Every aggregate the workflow's record rules read (enrollment, exit, steps)."""
        found: list[Aggregate] = []
        for cond in (self.only_if, self.exit_if, *self.step_only_if):
            if cond is not None:
                found += dependencies(cond.rule).aggregates
        return tuple(dict.fromkeys(found))

    @property
    def uses_account(self) -> bool:
        return any(
            dependencies(c.rule).uses_account
            for c in (self.only_if, self.exit_if, *self.step_only_if)
            if c is not None
        )

    def trigger_matches(self, detail: Mapping[str, Any], now: datetime) -> bool:
        """The trigger's own filters on the signal: health `to` / `from`, an event's `where`."""
        trigger = self.definition.trigger
        if isinstance(trigger, HealthTrigger):
            if trigger.to is not None and detail.get("to") != trigger.to:
                return False
            if trigger.from_ is not None and detail.get("from") != trigger.from_:
                return False
        if isinstance(trigger, EventTrigger) and self.event_where is not None:
            stamp = datetime.fromisoformat(detail["timestamp"])
            event = EventView(trigger.event, stamp, detail.get("properties") or {})
            return bool(self.event_where(event, now))
        return True


_cache: dict[tuple[int, Lifecycle], tuple[Mapping[str, Any], CompiledWorkflow]] = {}
_lock = threading.Lock()
_CACHE_SIZE = 2048


def compile_version(
    version_id: int, document: Mapping[str, Any], lifecycle: Lifecycle
) -> CompiledWorkflow:
    """The version's document, parsed and compiled (cached: a version never changes; the
    document is compared too, so another database's version of the same id is not mixed up)."""
    key = (version_id, lifecycle)
    with _lock:
        found = _cache.get(key)
    if found is not None and found[0] == document:
        return found[1]
    definition = WorkflowDef.model_validate(dict(document))
    trigger = definition.trigger
    where = None
    if isinstance(trigger, EventTrigger) and trigger.where is not None:
        where = to_python(parse(trigger.where))
    compiled = CompiledWorkflow(
        version_id=version_id,
        definition=definition,
        only_if=condition(definition.only_if, lifecycle),
        exit_if=condition(definition.exit_if, lifecycle),
        step_only_if=tuple(condition(s.only_if, lifecycle) for s in definition.steps),
        event_where=where,
    )
    with _lock:
        if len(_cache) >= _CACHE_SIZE:
            _cache.clear()
        _cache[key] = (document, compiled)
    return compiled
