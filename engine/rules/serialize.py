"""The JSON form of a rule's AST, for storage: `to_json(rule)` and `from_json(data)`.

Numbers travel as strings (`{"num": "1.50"}`) so no precision is lost; dates as
`{"date": "2026-01-31"}`; strings and booleans as themselves.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

from engine.rules.ast import (
    Aggregate,
    AggregateCompare,
    Ago,
    And,
    Compare,
    CompareOp,
    Contains,
    DateValue,
    Duration,
    Field,
    In,
    IsSet,
    Not,
    Or,
    Rule,
    Unit,
    Value,
    Within,
)


def _value(value: Value) -> Any:
    if isinstance(value, DateValue):
        return {"date": value.text}
    if isinstance(value, Decimal):
        return {"num": str(value)}
    return value


def _from_value(data: Any) -> Value:
    if isinstance(data, dict) and "date" in data:
        return DateValue(str(data["date"]))
    if isinstance(data, dict) and "num" in data:
        return Decimal(str(data["num"]))
    if isinstance(data, bool | str):
        return data
    raise ValueError(f"not a rule value: {data!r}")


def _duration(d: Duration) -> str:
    return str(d)


def _from_duration(text: str) -> Duration:
    return Duration(int(text[:-1]), cast(Unit, text[-1]))


def to_json(rule: Rule) -> dict[str, Any]:
    """The rule as plain JSON-able data."""
    match rule:
        case Or(items):
            return {"or": [to_json(i) for i in items]}
        case And(items):
            return {"and": [to_json(i) for i in items]}
        case Not(item):
            return {"not": to_json(item)}
        case Compare(field, op, value):
            return {"cmp": op, "field": list(field.path), "value": _value(value)}
        case In(field, values):
            return {"in": list(field.path), "values": [_value(v) for v in values]}
        case Contains(field, value):
            return {"contains": list(field.path), "value": value}
        case IsSet(field, negated):
            return {"is_set": list(field.path), "negated": negated}
        case Within(field, duration, future):
            return {"within": list(field.path), "duration": _duration(duration), "future": future}
        case Ago(field, relation, duration):
            return {"ago": list(field.path), "relation": relation, "duration": _duration(duration)}
        case AggregateCompare(aggregate, op, number):
            return {
                "aggregate": aggregate.function,
                "event": aggregate.event,
                "where": to_json(aggregate.where) if aggregate.where is not None else None,
                "window": _duration(aggregate.window),
                "cmp": op,
                "number": str(number),
            }
    raise TypeError(f"not a rule node: {rule!r}")


def from_json(data: dict[str, Any]) -> Rule:
    """The rule `to_json` produced."""
    if "or" in data:
        return Or(tuple(from_json(i) for i in data["or"]))
    if "and" in data:
        return And(tuple(from_json(i) for i in data["and"]))
    if "not" in data:
        return Not(from_json(data["not"]))
    if "aggregate" in data:
        where = from_json(data["where"]) if data.get("where") is not None else None
        aggregate = Aggregate(
            data["aggregate"], data["event"], where, _from_duration(data["window"])
        )
        return AggregateCompare(aggregate, cast(CompareOp, data["cmp"]), Decimal(data["number"]))
    if "cmp" in data:
        field = Field(tuple(data["field"]))
        return Compare(field, cast(CompareOp, data["cmp"]), _from_value(data["value"]))
    if "in" in data:
        return In(Field(tuple(data["in"])), tuple(_from_value(v) for v in data["values"]))
    if "contains" in data:
        return Contains(Field(tuple(data["contains"])), str(data["value"]))
    if "is_set" in data:
        return IsSet(Field(tuple(data["is_set"])), bool(data["negated"]))
    if "within" in data:
        field = Field(tuple(data["within"]))
        return Within(field, _from_duration(data["duration"]), bool(data["future"]))
    if "ago" in data:
        field = Field(tuple(data["ago"]))
        return Ago(field, data["relation"], _from_duration(data["duration"]))
    raise ValueError(f"not a rule: {data!r}")
