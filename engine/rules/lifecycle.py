"""The two built-in fields whose meaning comes from the workspace: `stage` and `health`.

Before either compiler sees a rule, `resolve` rewrites these into plain tests, so both
compilers keep one meaning by construction:
- `stage` compares in the order of the stage list (`stage < "Renewal"` is `stage in [...the
  stages before Renewal]`), and a stage literal matches its listed spelling whatever its case;
- `health` is the bucket of `health_score` under the thresholds (`health = "bad"` is
  `health_score < bad`), ordered bad < neutral < good.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from engine.rules.ast import (
    Ago,
    And,
    Compare,
    CompareOp,
    Contains,
    Field,
    In,
    IsSet,
    Not,
    Or,
    Rule,
    Value,
    Within,
)

BUCKETS = ("bad", "neutral", "good")


@dataclass(frozen=True)
class Lifecycle:
    """The stage list (empty: stages are plain strings) and the health thresholds."""

    stages: tuple[str, ...] = ()
    good: float = 70
    bad: float = 40


class LifecycleError(ValueError):
    """A rule names a stage or a health bucket that does not exist."""


def resolve(rule: Rule, lifecycle: Lifecycle, *, strict: bool = False) -> Rule:
    """`rule` with its `stage` and `health` tests made plain. With `strict`, an unknown
    stage or bucket is a LifecycleError (when a rule is saved); otherwise it matches nothing."""
    match rule:
        case Or(items):
            return Or(tuple(resolve(i, lifecycle, strict=strict) for i in items))
        case And(items):
            return And(tuple(resolve(i, lifecycle, strict=strict) for i in items))
        case Not(item):
            return Not(resolve(item, lifecycle, strict=strict))
    field = getattr(rule, "field", None)
    if not isinstance(field, Field) or not _builtin(field.path):
        return rule
    if field.path[-1] == "health":
        return _Health(lifecycle, field, strict).rule(rule)
    if lifecycle.stages:
        return _Stage(lifecycle.stages, field, strict).rule(rule)
    return rule


def _builtin(path: tuple[str, ...]) -> bool:
    return path[-1] in ("stage", "health") and (
        len(path) == 1 or (len(path) == 2 and path[0] == "account")
    )


def _false(field: Field) -> Rule:
    """A test no record passes (`x is set and x is not set`)."""
    return And((IsSet(field), IsSet(field, negated=True)))


def _any(field: Field, parts: Sequence[Rule]) -> Rule:
    if not parts:
        return _false(field)
    return parts[0] if len(parts) == 1 else Or(tuple(parts))


_ORDER = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


@dataclass(frozen=True)
class _Stage:
    stages: tuple[str, ...]
    field: Field
    strict: bool

    def canonical(self, value: Value) -> Value | None:
        if not isinstance(value, str):
            return None
        for name in self.stages:
            if name.casefold() == value.strip().casefold():
                return name
        if self.strict:
            raise LifecycleError(
                f"{self.field}: {value!r} is not a stage; the stages are {', '.join(self.stages)}"
            )
        return None

    def rule(self, rule: Rule) -> Rule:
        match rule:
            case Compare(_, op, value) if op in ("=", "!="):
                return replace(rule, value=self.canonical(value) or value)
            case Compare(_, op, value):
                found = self.canonical(value)
                if found is None:
                    return _false(self.field)
                at = self.stages.index(str(found))
                names = [s for i, s in enumerate(self.stages) if _ORDER[op](i, at)]
                return In(self.field, tuple(names)) if names else _false(self.field)
            case In(_, values):
                return In(self.field, tuple(self.canonical(v) or v for v in values))
        return rule


@dataclass(frozen=True)
class _Health:
    lifecycle: Lifecycle
    field: Field
    strict: bool

    @property
    def score(self) -> Field:
        return Field((*self.field.path[:-1], "health_score"))

    def bucket(self, name: Value) -> Rule | None:
        good, bad = Decimal(str(self.lifecycle.good)), Decimal(str(self.lifecycle.bad))
        if name == "bad":
            return Compare(self.score, "<", bad)
        if name == "neutral":
            return And((Compare(self.score, ">=", bad), Compare(self.score, "<", good)))
        if name == "good":
            return Compare(self.score, ">=", good)
        if self.strict:
            raise LifecycleError(
                f"{self.field}: {name!r} is not a health bucket (good, neutral, bad)"
            )
        return None

    def rule(self, rule: Rule) -> Rule:
        match rule:
            case Compare(_, "=", value):
                return self.bucket(value) or _false(self.field)
            case Compare(_, "!=", value):
                return Not(self.bucket(value) or _false(self.field))
            case Compare(_, op, value):
                if self.bucket(value) is None:
                    return _false(self.field)
                at = BUCKETS.index(str(value))
                wanted = [b for i, b in enumerate(BUCKETS) if _ORDER[op](i, at)]
                return _any(self.field, [r for b in wanted if (r := self.bucket(b)) is not None])
            case In(_, values):
                return _any(self.field, [r for v in values if (r := self.bucket(v)) is not None])
            case IsSet(_, negated):
                return IsSet(self.score, negated)
            case Contains(_, needle):
                return _any(
                    self.field, [r for b in BUCKETS if needle in b if (r := self.bucket(b))]
                )
            case Within() | Ago():
                return _false(self.field)  # a bucket is not a timestamp
        return rule


__all__ = ["BUCKETS", "CompareOp", "Lifecycle", "LifecycleError", "resolve"]
