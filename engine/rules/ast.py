"""The rule language's typed AST (see workflow-format.md, "The rule language").

Nodes are frozen dataclasses, so two parses of the same rule compare equal. `str(node)` prints
the rule in canonical form, which parses back to an equal AST.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

KEYWORDS = frozenset(
    [
        "and",
        "or",
        "not",
        "in",
        "contains",
        "is",
        "set",
        "within",
        "next",
        "before",
        "after",
        "ago",
        "count",
        "trend",
        "where",
        "true",
        "false",
        "date",
    ]
)
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

CompareOp = Literal["=", "!=", "<", "<=", ">", ">="]
Unit = Literal["m", "h", "d", "w"]
UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}


def quote_name(name: str) -> str:
    """A name as the grammar writes it: bare when it can be, else in backticks."""
    if _PLAIN_NAME.match(name) and name.lower() not in KEYWORDS:
        return name
    return "`" + name.replace("`", "``") + "`"


@dataclass(frozen=True)
class Field:
    """A dotted path: `status`, `account.plan`, `properties.format`."""

    path: tuple[str, ...]

    def __str__(self) -> str:
        return ".".join(quote_name(part) for part in self.path)


@dataclass(frozen=True)
class DateValue:
    """`date("2026-01-31")` or a full ISO-8601 timestamp, kept as written."""

    text: str

    def __str__(self) -> str:
        return f"date({json.dumps(self.text, ensure_ascii=False)})"


Value = str | Decimal | bool | DateValue


def format_value(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


@dataclass(frozen=True)
class Duration:
    """A positive whole number of minutes, hours, days or weeks (`1d` is 24 hours)."""

    amount: int
    unit: Unit

    @property
    def seconds(self) -> int:
        return self.amount * UNIT_SECONDS[self.unit]

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"


@dataclass(frozen=True)
class Compare:
    field: Field
    op: CompareOp
    value: Value

    def __str__(self) -> str:
        return f"{self.field} {self.op} {format_value(self.value)}"


@dataclass(frozen=True)
class In:
    field: Field
    values: tuple[Value, ...]

    def __str__(self) -> str:
        return f"{self.field} in [{', '.join(format_value(v) for v in self.values)}]"


@dataclass(frozen=True)
class Contains:
    field: Field
    value: str

    def __str__(self) -> str:
        return f"{self.field} contains {format_value(self.value)}"


@dataclass(frozen=True)
class IsSet:
    field: Field
    negated: bool = False

    def __str__(self) -> str:
        return f"{self.field} is {'not ' if self.negated else ''}set"


@dataclass(frozen=True)
class Within:
    """`field within 7d` (the past 7 days) or `field within next 7d`."""

    field: Field
    duration: Duration
    future: bool = False

    def __str__(self) -> str:
        return f"{self.field} within {'next ' if self.future else ''}{self.duration}"


@dataclass(frozen=True)
class Ago:
    """`field before 30d ago` or `field after 30d ago`."""

    field: Field
    relation: Literal["before", "after"]
    duration: Duration

    def __str__(self) -> str:
        return f"{self.field} {self.relation} {self.duration} ago"


@dataclass(frozen=True)
class Aggregate:
    """`count(login, 7d)`, `trend(login where properties.x = 1, 7d)`."""

    function: Literal["count", "trend"]
    event: str
    where: Rule | None
    window: Duration

    def __str__(self) -> str:
        where = f" where {self.where}" if self.where is not None else ""
        return f"{self.function}({quote_name(self.event)}{where}, {self.window})"


@dataclass(frozen=True)
class AggregateCompare:
    aggregate: Aggregate
    op: CompareOp
    number: Decimal

    def __str__(self) -> str:
        return f"{self.aggregate} {self.op} {self.number}"


@dataclass(frozen=True)
class Not:
    item: Rule

    def __str__(self) -> str:
        return f"not {_wrap(self.item, Not)}"


@dataclass(frozen=True)
class And:
    items: tuple[Rule, ...]

    def __str__(self) -> str:
        return " and ".join(_wrap(item, And) for item in self.items)


@dataclass(frozen=True)
class Or:
    items: tuple[Rule, ...]

    def __str__(self) -> str:
        return " or ".join(_wrap(item, Or) for item in self.items)


Rule = Compare | In | Contains | IsSet | Within | Ago | AggregateCompare | Not | And | Or

_BINDING = {Or: 1, And: 2, Not: 3}


def _wrap(item: Rule, parent: type) -> str:
    """Parenthesise a child that binds looser than (or, for and/or, as loose as) its parent."""
    child = _BINDING.get(type(item), 4)
    if child < _BINDING[parent] or (child == _BINDING[parent] and parent is not Not):
        return f"({item})"
    return str(item)
