"""The one interface every action implements, and what a run of one returns.

An action is a module in engine/actions/ with: its config schema (the step's pydantic model in
`engine.workflow_defs`), `problems` (checks that need the workspace, run when a workflow is
saved), `preview` (what it would do, with no side effect: `workflows test`), `run` (the effect,
carrying the step's idempotency key) and its declared delivery policy (RELIABILITY 6).
The runner owns every state transition; an action only says how its call went.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from engine import http
from engine.settings import Settings
from engine.workflow_defs import StepDef


class Delivery(StrEnum):
    """What a crash between the provider's call and our commit may lead to."""

    # Called again with the same key: the peer (or our lookup before calling) drops the repeat.
    AT_LEAST_ONCE_KEYED = "at least once, keyed"
    # Committed as `sending` before the call; found `sending` after a crash it becomes
    # `unknown` and is never repeated by itself.
    AT_MOST_ONCE = "at most once"


@dataclass(frozen=True)
class Done:
    """The effect happened; `result` is kept on the step run (ids, status codes)."""

    result: Mapping[str, Any] = field(default_factory=dict)
    summary: str = "done"


@dataclass(frozen=True)
class Retry:
    """Worth trying again: at `at` (a peer's Retry-After) or after the runner's backoff."""

    error: str
    at: datetime | None = None


@dataclass(frozen=True)
class Failed:
    """A permanent error: trying again gives the same answer; `on_failure` decides."""

    error: str


Outcome = Done | Retry | Failed


def _no_changes(call: Mapping[str, Any]) -> None:
    raise ValueError("this run cannot change records")


@dataclass(frozen=True)
class RunContext:
    """Everything a run may use: the template data (plain), the step's key, and the services."""

    data: Mapping[str, Any]
    step_index: int
    idempotency_key: str
    attempt: int
    now: datetime
    settings: Settings
    resolver: http.Resolver
    # Store a change to the record as ingestion would (a Segment-spec `identify` / `group`
    # call) and have it evaluated; ValueError names what ingestion refused.
    record_change: Callable[[Mapping[str, Any]], None] = _no_changes


@dataclass(frozen=True)
class Preview:
    """What a step would do, rendered, without doing it; `problem` when it would not run."""

    lines: tuple[str, ...]
    problem: str | None = None


class Action(ABC):
    """One action kind. Instances are stateless and shared between threads."""

    kind: ClassVar[str]
    config: ClassVar[type[StepDef]]
    delivery: ClassVar[Delivery]

    @abstractmethod
    def problems(
        self,
        step: StepDef,
        path: str,
        *,
        context: Mapping[str, Any],
        allowed_hosts: Collection[str],
        resolver: http.Resolver,
    ) -> list[str]:
        """`path.field: problem` lines for what only the workspace can tell (hosts, template
        names against the sample `context`); the schema has checked everything else."""

    @abstractmethod
    def preview(self, step: StepDef, data: Mapping[str, Any], settings: Settings) -> Preview:
        """The rendered effect for one record's `data`; never calls anything outside."""

    @abstractmethod
    def run(self, step: StepDef, ctx: RunContext) -> Outcome:
        """Do the effect once, keyed by `ctx.idempotency_key`; never raise for a peer's answer
        (return Retry or Failed); an exception is treated as a retryable failure."""
