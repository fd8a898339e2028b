"""The one interface every action implements, and what a run of one returns.

An action is a module in engine/actions/ with: its config schema (the step's pydantic model in
`engine.step_defs`), `problems` (checks that need the workspace, run when a workflow is
saved), `preview` (what it would do, with no side effect: `workflows test`), `run` (the effect,
carrying the step's idempotency key) and its declared delivery policy (RELIABILITY 6).
The runner owns every state transition; an action only says how its call went.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from engine import http
from engine.clock import Clock, SystemClock
from engine.settings import Settings
from engine.step_defs import StepDef

if TYPE_CHECKING:
    from sqlalchemy import Engine


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


@dataclass(frozen=True)
class Waiting:
    """The step waits for a person (an email draft for approval); its row is `waiting` until
    a decision moves it on. `result` is kept on the step run."""

    result: Mapping[str, Any] = field(default_factory=dict)
    summary: str = "waits"


@dataclass(frozen=True)
class Attention:
    """The step cannot go on without a person fixing something (a sender with no Gmail
    connection, a template value missing): held as "needs attention", never sent half-done.
    `detail` (kept as the step's result) says what would release it: {"needs": "gmail",
    "sender": address} is released when that address connects Gmail."""

    error: str
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Skipped:
    """Nothing to do, by decision: a discarded or expired draft, every recipient suppressed."""

    reason: str


@dataclass(frozen=True)
class Unknown:
    """The at-most-once call broke off midway (a connection lost during SMTP DATA): it may
    have gone out. Never repeated by itself; a person marks it sent or sends it again."""

    error: str


@dataclass(frozen=True)
class Later:
    """Not now, and not a failure (a channel's pacing slot): run again at `at` with the same
    attempt; `keep` is handed to that run as `RunContext.kept` (a slot reserved for it)."""

    at: datetime
    reason: str
    keep: Mapping[str, Any] = field(default_factory=dict)


Outcome = Done | Retry | Failed | Waiting | Attention | Skipped | Unknown | Later


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
    # The database, for actions that keep state of their own (drafts, counters, channels).
    db: Engine | None = None
    clock: Clock = field(default_factory=SystemClock)
    step_run_id: int = 0
    enrollment_id: int = 0
    workflow_id: int = 0
    record_id: int = 0  # the enrolled record's row id (its external id is in `data`)
    # The secrets that sign this workflow's outgoing requests (webhooks), newest first.
    signing_keys: Sequence[str] = ()
    # What this step's previous run kept when it asked to be run later (Later.keep).
    kept: Mapping[str, Any] = field(default_factory=dict)
    # False when an earlier claim of this step at this attempt may have made the call (a
    # worker died or lost its lease): a keyed action then looks for its own effect first.
    first_call: bool = True

    @property
    def database(self) -> Engine:
        if self.db is None:
            raise RuntimeError("this run has no database")
        return self.db


@dataclass(frozen=True)
class SaveChecks:
    """What a step's save-time checks may consult: a sample record's template data
    (template_checks.sample_context), the hosts exempt from the URL checks, name resolution,
    and the settings (defaults such as APPROVAL_CHANNEL)."""

    context: Mapping[str, Any]
    allowed_hosts: Collection[str]
    resolver: http.Resolver
    settings: Settings


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
    # The runner reads the workflow's signing secrets with the claim (RunContext.signing_keys).
    signs_with_workflow_secret: ClassVar[bool] = False

    @abstractmethod
    def problems(self, step: StepDef, path: str, checks: SaveChecks) -> list[str]:
        """`path.field: problem` lines for what only the workspace can tell (hosts, template
        names against the sample `context`); the schema has checked everything else."""

    @abstractmethod
    def preview(self, step: StepDef, data: Mapping[str, Any], settings: Settings) -> Preview:
        """The rendered effect for one record's `data`; never calls anything outside."""

    def sends_now(self, step: StepDef, draft_status: str | None) -> bool:
        """Whether this run makes the at-most-once call (the runner then commits the step as
        `sending` first); `draft_status` is the step's draft's, if it has one."""
        return self.delivery is Delivery.AT_MOST_ONCE

    @abstractmethod
    def run(self, step: StepDef, ctx: RunContext) -> Outcome:
        """Do the effect once, keyed by `ctx.idempotency_key`; never raise for a peer's answer
        (return Retry or Failed); an exception is treated as a retryable failure."""
