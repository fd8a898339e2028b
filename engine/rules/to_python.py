"""Compile a rule to a Python predicate over one record (the single-record evaluation path).

The caller supplies the record's values and its event aggregates (fetched for all of a
record's rules in one grouped query); `now` is one instant per evaluation, in UTC.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

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
from engine.rules.values import MISSING, as_timestamp, compare, contains, is_set


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
