"""What a rule depends on: its fields, its aggregates, whether time alone can change it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from engine.rules.ast import (
    Aggregate,
    AggregateCompare,
    Ago,
    And,
    Compare,
    Contains,
    Field,
    In,
    IsSet,
    Not,
    Or,
    Rule,
    Within,
)


def leaves(rule: Rule) -> Iterator[Rule]:
    """Every leaf test of the rule (not looking inside a `where`)."""
    match rule:
        case And(items) | Or(items):
            for item in items:
                yield from leaves(item)
        case Not(item):
            yield from leaves(item)
        case _:
            yield rule


@dataclass(frozen=True)
class Dependencies:
    """The parts of a record a rule reads, and whether the passing of time can change it."""

    fields: frozenset[tuple[str, ...]]
    aggregates: tuple[Aggregate, ...]
    time_dependent: bool

    @property
    def events(self) -> frozenset[str]:
        """Event names whose arrival can change the rule's answer."""
        return frozenset(a.event for a in self.aggregates)

    @property
    def uses_account(self) -> bool:
        return any(path[0] == "account" and len(path) > 1 for path in self.fields)

    @property
    def uses_last_seen(self) -> bool:
        return ("last_seen_at",) in self.fields or ("account", "last_seen_at") in self.fields


def dependencies(rule: Rule) -> Dependencies:
    """What `rule` reads. Aggregates, `within`, `before/after … ago` move with time;
    comparisons to a fixed `date(...)` do not."""
    fields: set[tuple[str, ...]] = set()
    aggregates: list[Aggregate] = []
    moving = False
    for leaf in leaves(rule):
        match leaf:
            case AggregateCompare(aggregate, _, _):
                aggregates.append(aggregate)
                moving = True
            case Within(field, _, _) | Ago(field, _, _):
                fields.add(field.path)
                moving = True
            case Compare(field, _, _) | In(field, _) | Contains(field, _) | IsSet(field, _):
                fields.add(field.path)
    return Dependencies(frozenset(fields), tuple(dict.fromkeys(aggregates)), moving)


def account_fields(rule: Rule) -> list[Field]:
    """The `account.X` fields of a rule (allowed in contact rules only)."""
    found = []
    for leaf in leaves(rule):
        field = getattr(leaf, "field", None)
        if isinstance(field, Field) and field.path[0] == "account" and len(field.path) > 1:
            found.append(field)
    return found


__all__ = ["Dependencies", "account_fields", "dependencies", "leaves"]
