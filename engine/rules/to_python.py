"""Compile a rule to a Python predicate over one record (the single-record evaluation path).

The caller supplies the record's values and its event aggregates (fetched for all of a
record's rules in one grouped query); `now` is one instant per evaluation, in UTC.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from engine.rules.ast import (
    Aggregate,
    AggregateCompare,
    Ago,
    And,
    Compare,
    Contains,
    In,
    IsSet,
    Not,
    Or,
    Rule,
    Within,
)
from engine.rules.values import MISSING, as_timestamp, compare, contains, is_set, trend


class RecordView(Protocol):
    """What a predicate reads: field values by path, and the value of each aggregate."""

    def value(self, path: tuple[str, ...]) -> object:
        """The field's value, or `values.MISSING`."""
        ...

    def aggregate(self, aggregate: Aggregate) -> object:
        """count(...) as an int, trend(...) as a Decimal percent."""
        ...


Predicate = Callable[[RecordView, datetime], bool]


def to_python(rule: Rule) -> Predicate:
    """A predicate `(record, now) -> bool` with the meaning of workflow-format.md."""
    match rule:
        case Or(items):
            parts = [to_python(i) for i in items]
            return lambda r, now: any(p(r, now) for p in parts)
        case And(items):
            parts = [to_python(i) for i in items]
            return lambda r, now: all(p(r, now) for p in parts)
        case Not(item):
            inner = to_python(item)
            return lambda r, now: not inner(r, now)
        case Compare(field, op, value):
            return lambda r, now: compare(r.value(field.path), op, value)
        case In(field, values):
            return lambda r, now: any(compare(r.value(field.path), "=", v) for v in values)
        case Contains(field, needle):
            return lambda r, now: contains(r.value(field.path), needle)
        case IsSet(field, negated):
            return lambda r, now: is_set(r.value(field.path)) != negated
        case Within(field, duration, future):
            span = timedelta(seconds=duration.seconds)
            if future:
                return lambda r, now: _in_window(r.value(field.path), now, now + span, future=True)
            return lambda r, now: _in_window(r.value(field.path), now - span, now, future=False)
        case Ago(field, relation, duration):
            span = timedelta(seconds=duration.seconds)
            if relation == "before":
                return lambda r, now: _stamp_is(r.value(field.path), "<", now - span)
            return lambda r, now: _stamp_is(r.value(field.path), ">", now - span)
        case AggregateCompare(aggregate, op, number):
            return lambda r, now: compare(r.aggregate(aggregate), op, number)
    raise TypeError(f"not a rule node: {rule!r}")


@dataclass(frozen=True)
class EventView:
    """One event as a `where` sees it: `timestamp` and `properties.*`."""

    name: str
    timestamp: datetime
    properties: dict[str, Any]

    def value(self, path: tuple[str, ...]) -> object:
        if path == ("timestamp",):
            return self.timestamp
        current: object = self.properties
        for key in path[1:]:
            if not isinstance(current, dict) or key not in current:
                return MISSING
            current = current[key]
        return current

    def aggregate(self, aggregate: Aggregate) -> object:
        raise TypeError("no aggregate inside 'where'")


def aggregate_value(aggregate: Aggregate, events: Iterable[EventView], now: datetime) -> object:
    """count(...) or trend(...) over a record's events: count in (now - D, now], trend against
    the window before."""
    span = timedelta(seconds=aggregate.window.seconds)
    where = to_python(aggregate.where) if aggregate.where is not None else None
    current = previous = 0
    for event in events:
        if event.name != aggregate.event or (where is not None and not where(event, now)):
            continue
        if now - span < event.timestamp <= now:
            current += 1
        elif now - 2 * span < event.timestamp <= now - span:
            previous += 1
    return current if aggregate.function == "count" else trend(current, previous)


def _in_window(value: object, start: datetime, end: datetime, *, future: bool) -> bool:
    """`within D`: (now - D, now]; `within next D`: [now, now + D)."""
    stamp = as_timestamp(value) if value is not MISSING else None
    if stamp is None:
        return False
    return start <= stamp < end if future else start < stamp <= end


def _stamp_is(value: object, op: str, moment: datetime) -> bool:
    stamp = as_timestamp(value) if value is not MISSING else None
    if stamp is None:
        return False
    return stamp < moment if op == "<" else stamp > moment
