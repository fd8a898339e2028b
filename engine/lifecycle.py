"""Stages and health buckets as a workflow file defines them (workflow-format.md).

Stages are an ordered list matched case-insensitively; health buckets come from two
thresholds: a score >= good is good, < bad is bad, anything between is neutral.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from engine.clock import Clock
from engine.rules.lifecycle import Lifecycle
from storage.db import session_scope
from storage.queries import configuration

Bucket = Literal["bad", "neutral", "good"]
Direction = Literal["drop", "rise", "change"]
BUCKETS: tuple[Bucket, ...] = ("bad", "neutral", "good")

STAGES_KEY = "stages"
HEALTH_KEY = "health"
KEYS = (STAGES_KEY, HEALTH_KEY)  # what a Lifecycle is read from


@dataclass(frozen=True)
class Stages:
    """The ordered stage list; empty means no list was applied and any stage is accepted."""

    names: tuple[str, ...] = ()

    def canonical(self, value: str) -> str | None:
        """The listed spelling of `value` (case-insensitive), or None when it is not listed."""
        if not self.names:
            return value
        folded = value.strip().casefold()
        for name in self.names:
            if name.casefold() == folded:
                return name
        return None

    def allowed(self) -> str:
        """The list as an error message shows it."""
        return ", ".join(self.names)


NO_STAGES = Stages()
STAGE_CACHE_TTL = timedelta(seconds=5)


@dataclass(frozen=True)
class Health:
    """Thresholds: score >= good is good, score < bad is bad, else neutral."""

    good: float = 70
    bad: float = 40

    def bucket(self, score: float | None) -> Bucket | None:
        if score is None:
            return None
        if score >= self.good:
            return "good"
        if score < self.bad:
            return "bad"
        return "neutral"

    def move(
        self, before: float | None, after: float | None
    ) -> tuple[Direction, Bucket | None, Bucket] | None:
        """The signal a score change gives: (direction, from, to), or None when the bucket
        stays, or the score was cleared (clearing emits nothing)."""
        old, new = self.bucket(before), self.bucket(after)
        if new is None or old == new:
            return None
        if old is None:
            return "change", None, new
        direction: Direction = "rise" if BUCKETS.index(new) > BUCKETS.index(old) else "drop"
        return direction, old, new


def stages(session: Session) -> Stages:
    """The workspace's stage list (empty until a file sets one)."""
    return Stages(tuple(configuration.get(session, key=STAGES_KEY) or ()))


def load_stages(db: Engine) -> Stages:
    """The workspace's stage list, read in a unit of work of its own."""
    with session_scope(db) as session:
        return stages(session)


class StageCache:
    """The stage list as a long-running process keeps it: read again at most once per `ttl`.

    Ingestion checks every `stage` trait against the list; a list applied meanwhile is seen
    within `ttl`. Safe to share between threads: concurrent callers of a stale cache wait for
    one load.
    """

    def __init__(
        self, load: Callable[[], Stages], *, clock: Clock, ttl: timedelta = STAGE_CACHE_TTL
    ) -> None:
        self._load = load
        self._clock = clock
        self._ttl = ttl
        self._lock = threading.Lock()
        self._entry: tuple[Stages, datetime] | None = None

    def fresh(self) -> Stages | None:
        """The list while younger than `ttl`, else None (`get` would load it); never blocks."""
        entry = self._entry
        if entry is None:
            return None
        value, loaded_at = entry
        # A clock that went back counts as stale too, so a jump never pins an old list.
        return value if loaded_at <= self._clock.now() < loaded_at + self._ttl else None

    def get(self) -> Stages:
        """The list, loaded when stale; may block on the load (the database)."""
        value = self.fresh()
        if value is not None:
            return value
        with self._lock:
            value = self.fresh()  # another thread may have loaded it while this one waited
            if value is None:
                value = self._load()
                self._entry = (value, self._clock.now())
            return value


def health(session: Session) -> Health:
    """The workspace's health thresholds (70 / 40 until a file sets them)."""
    value = configuration.get(session, key=HEALTH_KEY)
    return Health(**value) if value else Health()


def current(session: Session) -> Lifecycle:
    """What rules need of the workspace: the stage list and the health thresholds (one query)."""
    return from_configuration(configuration.get_many(session, keys=KEYS))


def from_configuration(found: Mapping[str, Any]) -> Lifecycle:
    """The Lifecycle of configuration values read by `KEYS` (a missing key: the default)."""
    h = Health(**found[HEALTH_KEY]) if found.get(HEALTH_KEY) else Health()
    return Lifecycle(tuple(found.get(STAGES_KEY) or ()), h.good, h.bad)


def validate_stages(names: Sequence[str]) -> list[str]:
    """Problems with a stage list: empty names, and names equal but for case."""
    problems = []
    seen: dict[str, str] = {}
    for i, name in enumerate(names):
        if not name.strip():
            problems.append(f"stages[{i}]: a stage needs a name")
        elif name.casefold() in seen:
            problems.append(
                f"stages[{i}]: {name!r} repeats {seen[name.casefold()]!r}"
                " (stages match case-insensitively)"
            )
        else:
            seen[name.casefold()] = name
    return problems
